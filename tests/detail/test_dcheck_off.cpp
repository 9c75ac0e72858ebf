// WEAKREF_DCHECK compiled out (include/weakref/detail/dcheck.hpp): this file
// turns the checks off for itself, whatever the build's setting, as a
// release build has them. Then a check's expression is not evaluated at all
// (no side effect, no cost) and a false one does not stop the program; it
// still has to compile.
#undef WEAKREF_DCHECKS
#define WEAKREF_DCHECKS 0
#include "weakref/detail/dcheck.hpp"

#include <gtest/gtest.h>

namespace weakref::testing {
namespace {

int calls = 0;
// Used only inside the checks: clang sees no call of it when they are off.
[[maybe_unused]] bool counted_false() {
  ++calls;
  return false;
}

TEST(DCheckOffTest, TheExpressionIsNotEvaluated) {
  int evaluated = 0;
  WEAKREF_DCHECK(++evaluated > 0, "never evaluated");
  WEAKREF_DCHECK(counted_false(), "never evaluated");
  EXPECT_EQ(evaluated, 0);
  EXPECT_EQ(calls, 0);
}

TEST(DCheckOffTest, AFalseCheckDoesNotStopTheProgram) {
  WEAKREF_DCHECK(false, "compiled out");
  SUCCEED();
}

}  // namespace
}  // namespace weakref::testing
