// WEAKREF_DCHECK (include/weakref/detail/dcheck.hpp) in the build's own
// setting: with the checks on (Debug, the sanitizer presets), a failed check
// prints file:line, the expression and the message, and aborts -- in a test's
// own macro, in an inline check of a library header, and in a check compiled
// into the library. With them off (the release presets) the death tests are
// skipped; tests/detail/test_dcheck_off.cpp shows what off means.
#include <gtest/gtest.h>

#include "weakref/detail/dcheck.hpp"
#include "weakref/detail/object.hpp"

namespace weakref::testing {
namespace {

TEST(DCheckTest, TheLibraryAndItsUsersAgreeOnTheSetting) {
  EXPECT_EQ(detail::dchecks_enabled_in_library(), WEAKREF_DCHECKS != 0);
}

TEST(DCheckTest, APassingCheckEvaluatesItsExpressionOnceAndGoesOn) {
  int evaluated = 0;
  WEAKREF_DCHECK(++evaluated > 0, "never fails");
  EXPECT_EQ(evaluated, WEAKREF_DCHECKS ? 1 : 0);
}

class DCheckDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!WEAKREF_DCHECKS) GTEST_SKIP() << "built with WEAKREF_DCHECKS off";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(DCheckDeathTest, AFailedCheckPrintsWhereWhatAndWhyThenAborts) {
  const int two = 2;
  EXPECT_DEATH(WEAKREF_DCHECK(two + 1 == 4, "arithmetic is broken"),
               "test_dcheck\\.cpp:[0-9]+: WEAKREF_DCHECK\\(two \\+ 1 == 4\\) failed: "
               "arithmetic is broken");
}

// An inline check of a library header: decref of an object whose count is
// already 0 (a stand-alone header, so nothing else is touched).
TEST_F(DCheckDeathTest, DecrefOfADeadObjectFailsInTheHeader) {
  detail::ObjectHeader h{};
  h.word.store(0);
  EXPECT_DEATH(detail::decref(&h), "object\\.hpp:[0-9]+: .*decref of an object whose count is 0");
}

// A check compiled into the library: a side table's weak units released
// below zero (one unit, two released).
TEST_F(DCheckDeathTest, ReleasingMoreSideTableUnitsThanHeldFailsInTheLibrary) {
  detail::ObjectHeader h{};
  detail::SideTable s(&h, detail::SideWord::initial());
  EXPECT_DEATH(detail::side_release(&s, 2),
               "object\\.cpp:[0-9]+: .*SideTable::weak released below 0");
}

}  // namespace
}  // namespace weakref::testing
