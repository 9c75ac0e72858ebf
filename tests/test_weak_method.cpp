// weakref::WeakMethod: Python's weakref.WeakMethod.
#include <sstream>

#include "support.hpp"

namespace weakref::testing {
namespace {

struct Button {
  int clicks = 0;
  void click() { ++clicks; }
  void unclick() { --clicks; }
  int add(int x, int y) const noexcept { return x + y + clicks; }
  std::string& name_ref() { return name; }
  std::string name = "b";
};

using WeakMethodTest = Test;

TEST_F(WeakMethodTest, CallsWhileAliveEmptyAfter) {
  Strong<Button> b = make<Button>();
  WeakMethod add(b, &Button::add);
  WeakMethod click(b, &Button::click);
  EXPECT_EQ(add(1, 2), std::optional<int>(3));
  EXPECT_TRUE(click());
  EXPECT_EQ(b->clicks, 1);
  b.reset();
  EXPECT_EQ(add(1, 2), std::nullopt);
  EXPECT_FALSE(click());
  EXPECT_TRUE(add.expired());
}

TEST_F(WeakMethodTest, ReferenceResultIsWrapped) {
  Strong<Button> b = make<Button>();
  WeakMethod m(b, &Button::name_ref);
  auto r = m();
  ASSERT_TRUE(r);
  r->get() = "renamed";
  EXPECT_EQ(b->name, "renamed");
}

TEST_F(WeakMethodTest, LockGivesTheBoundMethod) {
  Strong<Button> b = make<Button>();
  WeakMethod m(b, &Button::add);
  auto bound = m.lock();
  ASSERT_TRUE(bound);
  EXPECT_EQ(bound(2, 2), 4);
  EXPECT_TRUE(bound.object() == b);
  b.reset();
  EXPECT_EQ(bound(2, 2), 4);  // the bound method holds the object
  bound = {};
  EXPECT_FALSE(m.lock());
}

// Python's `m() == obj.f` (blinker's disconnect): bound methods are equal
// when they bind the same object (identity) and the same function.
TEST_F(WeakMethodTest, BoundMethodsCompareAsPythons) {
  Strong<Button> b = make<Button>();
  Strong<Button> c = make<Button>();
  using Bound = WeakMethod<void (Button::*)()>::BoundMethod;
  WeakMethod m(b, &Button::click);
  EXPECT_TRUE(m.lock() == Bound(b, &Button::click));
  EXPECT_TRUE(m.lock() == WeakMethod(b, &Button::click).lock());
  EXPECT_FALSE(m.lock() == Bound(c, &Button::click));
  EXPECT_TRUE(m.lock() != Bound(b, &Button::unclick));
  EXPECT_FALSE(m.lock() == Bound());
  // bound_method(obj, &T::f): Python's obj.f, with nothing to spell out.
  EXPECT_TRUE(m.lock() == bound_method(b, &Button::click));
  EXPECT_FALSE(m.lock() == bound_method(c, &Button::click));
  static_assert(std::is_same_v<decltype(bound_method(b, &Button::click)), Bound>);
  b.reset();
  EXPECT_TRUE(m.lock() == Bound());  // None == None
  EXPECT_FALSE(m.lock() == Bound(c, &Button::click));
  EXPECT_FALSE(m.lock() == bound_method(c, &Button::click));
}

TEST_F(WeakMethodTest, EachIsItsOwnWeakref) {
  Strong<Button> b = make<Button>();
  WeakMethod m1(b, &Button::click);
  WeakMethod m2(b, &Button::click);
  EXPECT_FALSE(m1.is(m2));
  EXPECT_EQ(getweakrefcount(b), 2U);
}

TEST_F(WeakMethodTest, EqualityAndHash) {
  Strong<Button> b = make<Button>();
  Strong<Button> c = make<Button>();
  WeakMethod m1(b, &Button::click);
  WeakMethod m2(b, &Button::click);
  WeakMethod other_obj(c, &Button::click);
  EXPECT_TRUE(m1 == m2);
  EXPECT_FALSE(m1 == other_obj);
  EXPECT_EQ(std::hash<decltype(m1)>{}(m1), std::hash<decltype(m2)>{}(m2));
  auto m1copy = m1;
  b.reset();
  EXPECT_FALSE(m1 == m2);
  EXPECT_TRUE(m1 == m1copy);
}

TEST_F(WeakMethodTest, CallbackRunsOnDeathUnlessDroppedFirst) {
  Strong<Button> b = make<Button>();
  int calls = 0;
  using M = WeakMethod<void (Button::*)()>;
  M kept(b, &Button::click, [&](M dead) {
    ++calls;
    EXPECT_FALSE(dead());
  });
  {
    M dropped(b, &Button::click, [&](const M&) { ++calls; });
  }
  b.reset();
  EXPECT_EQ(calls, 1);
}

TEST_F(WeakMethodTest, StreamsAsWeakref) {
  Strong<Button> b = make<Button>();
  WeakMethod m(b, &Button::click);
  std::ostringstream os;
  os << m;
  EXPECT_THAT(os.str(),
              ::testing::HasSubstr("; to 'weakref::testing::(anonymous namespace)::Button' at"));
}

TEST_F(WeakMethodTest, NullCallbackIsNoCallback) {
  UnraisableCapture capture;
  Strong<Button> b = make<Button>();
  using M = WeakMethod<void (Button::*)()>;
  std::function<void(M)> empty;
  M a(b, &Button::click, nullptr);
  M c(b, &Button::click, empty);
  EXPECT_FALSE(a.has_callback());
  EXPECT_FALSE(c.has_callback());
  EXPECT_TRUE(a == c);
  b.reset();
  EXPECT_TRUE(capture.messages.empty());
}

TEST_F(WeakMethodTest, HasCallbackIsFalseOnceCleared) {
  Strong<Button> b = make<Button>();
  using M = WeakMethod<void (Button::*)()>;
  M m(b, &Button::click, [](const M&) {});
  EXPECT_TRUE(m.has_callback());
  b.reset();
  EXPECT_FALSE(m.has_callback());
}

}  // namespace
}  // namespace weakref::testing
