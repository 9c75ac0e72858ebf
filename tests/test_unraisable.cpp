// The unraisable-exception hook.
#include <cstdio>

#include "support.hpp"

namespace weakref::testing {
namespace {

using UnraisableTest = Test;

TEST_F(UnraisableTest, DefaultHookPrintsLikeCPython) {
  ::testing::internal::CaptureStderr();
  write_unraisable(std::make_exception_ptr(std::logic_error("bad")), "Exception ignored in",
                   "<weakref at 0x1; dead>");
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "Exception ignored in: <weakref at 0x1; dead>\nstd::logic_error: bad\n");
}

TEST_F(UnraisableTest, SetReturnsPreviousAndEmptyRestoresDefault) {
  int calls = 0;
  UnraisableHook old = set_unraisable_hook([&](const UnraisableInfo&) { ++calls; });
  EXPECT_FALSE(old);
  EXPECT_TRUE(get_unraisable_hook());
  write_unraisable(nullptr, "x", "y");
  EXPECT_EQ(calls, 1);
  UnraisableHook mine = set_unraisable_hook({});
  EXPECT_TRUE(mine);
  EXPECT_FALSE(get_unraisable_hook());
}

TEST_F(UnraisableTest, ThrowingHookFallsBackToDefault) {
  set_unraisable_hook([](const UnraisableInfo&) { throw std::runtime_error("hook broke"); });
  ::testing::internal::CaptureStderr();
  Strong<Node> n = make<Node>();
  ref<Node> r(n, [](const ref<Node>&) { throw std::runtime_error("callback broke"); });
  n.reset();
  std::string err = ::testing::internal::GetCapturedStderr();
  set_unraisable_hook({});
  EXPECT_THAT(err, ::testing::HasSubstr("hook broke"));
  EXPECT_THAT(err, ::testing::HasSubstr("callback broke"));
}

TEST_F(UnraisableTest, HookMayUseTheLibrary) {
  std::vector<ref<Node>> from_hook;
  Strong<Node> survivor = make<Node>("S");
  set_unraisable_hook([&](const UnraisableInfo&) { from_hook.emplace_back(survivor); });
  Strong<Node> n = make<Node>();
  ref<Node> r(n, [](const ref<Node>&) { throw 1; });
  n.reset();
  set_unraisable_hook({});
  ASSERT_EQ(from_hook.size(), 1U);
  EXPECT_TRUE(from_hook[0]() == survivor);
}

TEST_F(UnraisableTest, DescribesExceptions) {
  EXPECT_EQ(describe_exception(std::make_exception_ptr(ReferenceError())),
            "weakref::ReferenceError: weakly-referenced object no longer exists");
  EXPECT_EQ(describe_exception(nullptr), "NoneType: None");
}

}  // namespace
}  // namespace weakref::testing
