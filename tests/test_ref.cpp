// weakref::ref<T>: Python's weakref.ref, callbacks and the order of a death.
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "support.hpp"

namespace weakref::testing {
namespace {

using RefTest = Test;

TEST_F(RefTest, ReturnsReferentWhileAliveAndNullAfter) {
  Strong<Node> n = make<Node>("A");
  ref<Node> r(n);
  EXPECT_TRUE(r() == n);
  EXPECT_EQ(r()->label, "A");
  EXPECT_FALSE(r.expired());
  n.reset();
  EXPECT_FALSE(r());
  EXPECT_TRUE(r.expired());
  EXPECT_FALSE(r.lock());
}

TEST_F(RefTest, BasicRefIsReusedCallbackRefIsNot) {
  Strong<Node> n = make<Node>();
  ref<Node> r1(n);
  ref<Node> r2(n);
  EXPECT_TRUE(r1.is(r2));
  ref<Node> r3(n, [](const ref<Node>&) {});
  EXPECT_FALSE(r1.is(r3));
  EXPECT_EQ(getweakrefcount(n), 2U);
  ref<Node> copy = r3;
  EXPECT_TRUE(copy.is(r3));
  EXPECT_EQ(getweakrefcount(n), 2U);
  EXPECT_TRUE(r3.has_callback());
  EXPECT_FALSE(r1.has_callback());
}

TEST_F(RefTest, DroppedBasicRefIsRemade) {
  Strong<Node> n = make<Node>();
  ref<Node> r1(n);
  r1.reset();
  EXPECT_EQ(getweakrefcount(n), 0U);
  ref<Node> r2(n);
  EXPECT_EQ(getweakrefcount(n), 1U);
}

TEST_F(RefTest, EqualityComparesReferentsWhileAliveIdentityAfter) {
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  ref<Node> r1(a);
  ref<Node> r2(a, [](const ref<Node>&) {});
  ref<Node> q(b);
  EXPECT_TRUE(r1 == r2);
  EXPECT_FALSE(r1 == q);
  ref<Node> r2copy = r2;
  a.reset();
  EXPECT_FALSE(r1 == r2);
  EXPECT_TRUE(r2 == r2copy);
  EXPECT_TRUE(r1 == r1);
}

TEST_F(RefTest, HashIsByReferentAndStableAfterDeath) {
  Strong<Node> a = make<Node>();
  ref<Node> r1(a);
  ref<Node> r2(a, [](const ref<Node>&) {});
  const std::size_t h = std::hash<ref<Node>>{}(r1);
  EXPECT_EQ(h, std::hash<ref<Node>>{}(r2));
  std::unordered_set<ref<Node>> set{r1, r2};
  EXPECT_EQ(set.size(), 1U);  // equal while alive
  a.reset();
  EXPECT_EQ(std::hash<ref<Node>>{}(r1), h);
  EXPECT_EQ(std::hash<ref<Node>>{}(r2), h);
}

TEST_F(RefTest, NullStrongThrows) {
  Strong<Node> none;
  EXPECT_THROW(ref<Node>{none}, std::invalid_argument);
  try {
    ref<Node> r(none);
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "cannot create weak reference to 'NoneType' object");
  }
}

TEST_F(RefTest, EmptyHandle) {
  ref<Node> r;
  EXPECT_FALSE(r());
  EXPECT_TRUE(r.expired());
  ref<Node> s;
  EXPECT_TRUE(r == s);
  std::ostringstream os;
  os << r;
  EXPECT_EQ(os.str(), "<weakref at 0x0; empty>");
}

TEST_F(RefTest, CallbackGetsTheDeadWeakref) {
  Strong<Node> n = make<Node>();
  ref<Node> seen;
  bool alive_in_callback = true;
  ref<Node> r(n, [&](ref<Node> dead) {
    seen = dead;
    alive_in_callback = static_cast<bool>(dead());
  });
  n.reset();
  EXPECT_TRUE(seen.is(r));
  EXPECT_FALSE(alive_in_callback);
}

TEST_F(RefTest, CallbackWithoutArgument) {
  Strong<Node> n = make<Node>();
  int calls = 0;
  ref<Node> r(n, [&] { ++calls; });
  n.reset();
  EXPECT_EQ(calls, 1);
}

TEST_F(RefTest, CallbacksRunNewestFirstAfterAllAreCleared) {
  Strong<Node> n = make<Node>();
  std::vector<std::string> order;
  std::vector<ref<Node>> refs;
  ref<Node> basic(n);
  for (int i = 0; i < 4; ++i)
    refs.emplace_back(n, [&, i](const ref<Node>&) {
      order.push_back(std::to_string(i));
      // every weakref is already cleared when any callback runs
      EXPECT_FALSE(basic());
      for (auto& r : refs) EXPECT_FALSE(r());
    });
  n.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"3", "2", "1", "0"}));
}

TEST_F(RefTest, CallbackOfWeakrefDroppedBeforeDeathNeverRuns) {
  Strong<Node> n = make<Node>();
  int calls = 0;
  {
    ref<Node> r(n, [&](const ref<Node>&) { ++calls; });
  }
  n.reset();
  EXPECT_EQ(calls, 0);
}

// CPython clears a weakref's callback when it clears the weakref (issue 13):
// what the callback captured goes at the referent's death, not when the
// last handle of the weakref does.
TEST_F(RefTest, CallbackCapturesAreReleasedOnceItHasRun) {
  Strong<Node> n = make<Node>("N");
  Strong<Node> captured = make<Node>("C");
  ref<Node> watch(captured);
  int calls = 0;
  ref<Node> r(n, [keep = captured, &calls](const ref<Node>&) { ++calls; });
  captured.reset();
  EXPECT_TRUE(watch());  // the callback holds it
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(watch());  // gone with the callback, though r lives on
  EXPECT_FALSE(r.has_callback());
}

// A handler that unsubscribes itself holds its own weakref: weakref ->
// callback -> subscription -> weakref. The death breaks the cycle (the
// callback goes once it has run); nothing leaks (the ASan preset's leak
// checker runs this too).
TEST_F(RefTest, SelfUnsubscribingCallbackDoesNotLeak) {
  struct Subscription {
    ref<Node> r;
    int* destroyed = nullptr;
    ~Subscription() { ++*destroyed; }
  };
  int destroyed = 0, calls = 0;
  Strong<Node> n = make<Node>("N");
  {
    auto sub = std::make_shared<Subscription>();
    sub->destroyed = &destroyed;
    sub->r = ref<Node>(n, [sub, &calls](const ref<Node>& dead) {
      ++calls;
      EXPECT_TRUE(dead.is(sub->r));  // (unsubscribes from elsewhere)
    });
  }
  EXPECT_EQ(destroyed, 0);
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(destroyed, 1);
}

// The callback's parameter: a const reference borrows the dead weakref, a
// by-value or rvalue parameter owns a reference of its own, and any of them
// may keep it.
TEST_F(RefTest, CallbackParameterKinds) {
  Strong<Node> n = make<Node>("N");
  ref<Node> kept_by_value, kept_by_ref, kept_by_rvalue;
  ref<Node> a(n, [&](ref<Node> dead) { kept_by_value = std::move(dead); });
  ref<Node> b(n, [&](const ref<Node>& dead) { kept_by_ref = dead; });
  ref<Node> c(n, [&](ref<Node>&& dead) { kept_by_rvalue = std::move(dead); });
  n.reset();
  EXPECT_TRUE(kept_by_value.is(a));
  EXPECT_TRUE(kept_by_ref.is(b));
  EXPECT_TRUE(kept_by_rvalue.is(c));
  a.reset(), b.reset(), c.reset();
  EXPECT_TRUE(kept_by_value.expired() && kept_by_ref.expired() && kept_by_rvalue.expired());
}

// Generic callbacks (Python's `def callback(wr)`): `auto&` binds the dead
// weakref as a const lvalue, `auto` takes it by value. (A body that needs
// ref<Node> names the type: deduction from `ref r(n, cb)` also considers
// ref<>, whose check instantiates the body with ref<>.)
TEST_F(RefTest, GenericCallbackParameters) {
  Strong<Node> n = make<Node>("N");
  ref<Node> kept_by_ref, kept_by_value, kept_by_forwarding;
  ref<Node> a(n, [&](auto& dead) { kept_by_ref = dead; });
  ref<Node> b(n, [&](auto dead) { kept_by_value = dead; });
  ref<Node> c(n, [&](auto&& dead) { kept_by_forwarding = dead; });
  bool deduced_ran = false, proxy_ran = false;
  ref d(n, [&](auto& dead) { deduced_ran = dead.expired(); });
  proxy p(n, [&](auto& dead) { proxy_ran = dead.expired(); });
  WeakMethod m(n, &Node::name, [&](auto& dead) { EXPECT_TRUE(dead.expired()); });
  n.reset();
  EXPECT_TRUE(kept_by_ref.is(a));
  EXPECT_TRUE(kept_by_value.is(b));
  EXPECT_TRUE(kept_by_forwarding.is(c));
  EXPECT_TRUE(deduced_ran);
  EXPECT_TRUE(proxy_ran);
  static_assert(std::is_same_v<decltype(d), ref<Node>>);
}

// The side table keeps the basic ref until the object dies (its pin), but a
// basic ref that only garbage holds is still cleared by the collector before
// any finalizer runs (CPython's handle_weakrefs), leaves the object's list,
// and the next ref(obj) is a new basic ref.
struct Watcher {
  ref<Node> wa;
  Strong<Watcher> self;
  bool* saw_alive = nullptr;
  void tp_finalize() { *saw_alive = static_cast<bool>(wa()); }
  void trace(gc::Visitor& v) { v(wa, self); }
};

TEST_F(RefTest, BasicRefHeldOnlyByGarbageIsClearedAndRemade) {
  Strong<Node> x = make<Node>("X");
  bool saw_alive = true;
  {
    Strong<Watcher> g = make<Watcher>();
    g->wa = ref<Node>(x);  // x's basic ref, held by garbage only
    g->self = g;
    g->saw_alive = &saw_alive;
  }
  EXPECT_EQ(getweakrefcount(x), 1U);
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_FALSE(saw_alive);  // cleared before the finalizer ran
  EXPECT_EQ(getweakrefcount(x), 0U);
  ref<Node> r(x);
  EXPECT_TRUE(r() == x);
  EXPECT_EQ(getweakrefcount(x), 1U);
  EXPECT_TRUE(ref<Node>(x).is(r));
  x.reset();
  EXPECT_FALSE(r());
}

TEST_F(RefTest, WeakrefDroppedByEarlierCallbackOfSameDeathStillCallsBack) {
  // dropped_during_callbacks.scn: the callbacks are fixed when the death begins.
  Strong<Node> n = make<Node>();
  std::vector<std::string> order;
  auto r2 = std::make_unique<ref<Node>>(n, [&](const ref<Node>&) { order.push_back("r2"); });
  ref<Node> r1(n, [&](const ref<Node>&) {
    order.push_back("r1");
    r2.reset();
  });
  n.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"r1", "r2"}));
}

TEST_F(RefTest, CallbackExceptionGoesToHookAndOthersStillRun) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  std::vector<std::string> order;
  ref<Node> r1(n, [&](const ref<Node>&) { order.push_back("r1"); });
  ref<Node> r2(n, [&](const ref<Node>&) {
    order.push_back("r2");
    throw std::runtime_error("boom");
  });
  ref<Node> r3(n, [&](const ref<Node>&) { order.push_back("r3"); });
  n.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"r3", "r2", "r1"}));
  ASSERT_EQ(capture.messages.size(), 1U);
  EXPECT_EQ(capture.messages[0], "std::runtime_error: boom");
  EXPECT_THAT(capture.objects[0],
              ::testing::MatchesRegex("weakref callback of <weakref at 0x[0-9a-f]+; dead>"));
}

TEST_F(RefTest, NonStandardExceptionIsReportedToo) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  ref<Node> r(n, [](const ref<Node>&) { throw 42; });
  n.reset();
  ASSERT_EQ(capture.messages.size(), 1U);
  EXPECT_EQ(capture.messages[0], "int");
}

TEST_F(RefTest, CallbacksMayCreateAndDropObjectsAndWeakrefs) {
  Strong<Node> n = make<Node>();
  std::vector<ref<Node>> made;
  int inner_calls = 0;
  ref<Node> r(n, [&](const ref<Node>&) {
    for (int i = 0; i < 3; ++i) {
      Strong<Node> tmp = make<Node>("tmp");
      made.emplace_back(tmp, [&](const ref<Node>&) { ++inner_calls; });
      ref<Node> again(tmp);
    }  // each tmp dies here: its callback runs inside ours
  });
  n.reset();
  EXPECT_EQ(inner_calls, 3);
  EXPECT_EQ(made.size(), 3U);
}

TEST_F(RefTest, DeathOrderCallbacksThenMembersDepthFirst) {
  // "Only after its callbacks have run does the object release its slots, in
  // order a, b, c; a member dies completely before the next is released."
  std::vector<std::string> order;
  auto cb = [&order](std::string name) {
    return [&order, name](const ref<Node>&) { order.push_back(name); };
  };
  Strong<Node> a = make<Node>("A");
  a->a = make<Node>("B");
  a->a->a = make<Node>("D");
  a->b = make<Node>("C");
  ref<Node> ra(a, cb("A"));
  ref<Node> rb(a->a, cb("B"));
  ref<Node> rc(a->b, cb("C"));
  ref<Node> rd(a->a->a, cb("D"));
  a.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B", "D", "C"}));
}

TEST_F(RefTest, CallbackDroppingLastReferenceToAnotherObjectKillsIt) {
  // cb_del_cascade.scn: a death inside a callback runs its own callbacks.
  std::vector<std::string> order;
  Strong<Node> a = make<Node>("A");
  Strong<Node> b = make<Node>("B");
  ref<Node> rb(b, [&](const ref<Node>&) { order.push_back("B"); });
  ref<Node> ra(a, [&](const ref<Node>&) {
    order.push_back("A");
    b.reset();
  });
  a.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"A", "B"}));
}

TEST_F(RefTest, UpcastRefIsSameWeakrefObject) {
  struct Base {
    virtual ~Base() = default;
  };
  struct Derived : Base {
    int x = 1;
  };
  Strong<Derived> d = make<Derived>();
  ref<Derived> rd(d);
  ref<Base> rb = rd;
  EXPECT_TRUE(rb.is(rd));
  EXPECT_TRUE(rb() == d);
  ref<Base> direct(d);  // the basic ref again
  EXPECT_TRUE(direct.is(rd));
}

TEST_F(RefTest, TypeErasedRef) {
  Strong<Node> n = make<Node>("A");
  ref<> any(n);
  Strong<void> v = any();
  EXPECT_TRUE(v == n);
  EXPECT_TRUE(any.is(ref<Node>(n)));
}

TEST_F(RefTest, StreamsLikeCPython) {
  Strong<Node> n = make<Node>();
  ref<Node> r(n);
  std::ostringstream alive;
  alive << r;
  EXPECT_THAT(alive.str(),
              ::testing::MatchesRegex(
                  "<weakref at 0x[0-9a-f]+; to 'weakref::testing::Node' at 0x[0-9a-f]+>"));
  n.reset();
  std::ostringstream dead;
  dead << r;
  EXPECT_THAT(dead.str(), ::testing::MatchesRegex("<weakref at 0x[0-9a-f]+; dead>"));
}

TEST_F(RefTest, RefInsideReferentSlotDiesWithIt) {
  // setref_keepalive.scn: a weakref held by an object is dropped with it and
  // never calls back afterwards.
  Strong<Node> holder = make<Node>("H");
  Strong<Node> a = make<Node>("A");
  int calls = 0;
  holder->wa = ref<Node>(a, [&](const ref<Node>&) { ++calls; });
  EXPECT_EQ(getweakrefcount(a), 1U);
  holder.reset();
  EXPECT_EQ(getweakrefcount(a), 0U);
  a.reset();
  EXPECT_EQ(calls, 0);
}

TEST_F(RefTest, RefMadeInTpFinalizeIsClearedByTheDeath) {
  // CPython bug #1377858 (test_ref_created_during_del): tp_finalize makes the
  // object's first weakrefs, which moves its count to a new side table in the
  // middle of the death. The death must still complete and clear them, with
  // the callback, as CPython does after __del__.
  struct Target {
    std::vector<ref<Target>>* out;
    int* calls;
    bool* destroyed;
    Target(std::vector<ref<Target>>* o, int* c, bool* d) : out(o), calls(c), destroyed(d) {}
    void tp_finalize() {
      out->emplace_back(self(this));
      out->emplace_back(self(this), [c = calls] { ++*c; });
    }
    ~Target() { *destroyed = true; }
  };
  std::vector<ref<Target>> from_del;
  int calls = 0;
  bool destroyed = false;
  make<Target>(&from_del, &calls, &destroyed).reset();
  EXPECT_TRUE(destroyed);
  ASSERT_EQ(from_del.size(), 2U);
  EXPECT_FALSE(from_del[0]());
  EXPECT_FALSE(from_del[1]());
  EXPECT_EQ(calls, 1);
  std::ostringstream os;
  os << from_del[0];
  EXPECT_THAT(os.str(), ::testing::MatchesRegex("<weakref at 0x[0-9a-f]+; dead>"));
}

TEST_F(RefTest, HasCallbackIsFalseOnceCleared) {
  // CPython's __callback__ is None once the weakref is cleared, already
  // while the callback runs (test_callback_attribute_after_deletion).
  Strong<Node> n = make<Node>();
  bool during = true;
  ref<Node> r(n, [&](const ref<Node>& dead) { during = dead.has_callback(); });
  EXPECT_TRUE(r.has_callback());
  n.reset();
  EXPECT_FALSE(during);
  EXPECT_FALSE(r.has_callback());
  // Cleared by the collector (its referent was cyclic garbage).
  Strong<Node> cyc = make<Node>();
  cyc->a = cyc;
  cyc->wa = ref<Node>(cyc, [](const ref<Node>&) {});
  ref<Node> held = cyc->wa;
  EXPECT_TRUE(held.has_callback());
  cyc.reset();
  gc::collect();
  EXPECT_FALSE(held());
  EXPECT_FALSE(held.has_callback());
}

TEST_F(RefTest, NullCallbackIsNoCallback) {
  // Python's weakref.ref(o, None) is the shared basic ref
  // (test_shared_ref_without_callback).
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  ref<Node> basic(n);
  std::function<void(ref<Node>)> empty;
  void (*null_fn)(ref<Node>) = nullptr;
  ref<Node> a(n, nullptr);
  ref<Node> b(n, empty);
  ref<Node> c(n, null_fn);
  EXPECT_TRUE(a.is(basic));
  EXPECT_TRUE(b.is(basic));
  EXPECT_TRUE(c.is(basic));
  EXPECT_FALSE(b.has_callback());
  EXPECT_EQ(getweakrefcount(n), 1U);
  int calls = 0;
  std::function<void(ref<Node>)> full = [&](ref<Node>) { ++calls; };
  ref<Node> d(n, full);
  EXPECT_FALSE(d.is(basic));
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(capture.messages.empty());  // no std::bad_function_call
}

template <class A, class B>
concept ComparesWith = requires(const A& a, const B& b) {
  a == b;
};

TEST_F(RefTest, DoesNotCompareWithAStrong) {
  // CPython: a weakref never equals an object (test_equality's a == x). The
  // Strong used to convert silently to its basic ref and compare equal.
  EXPECT_FALSE((ComparesWith<ref<Node>, Strong<Node>>));
  EXPECT_FALSE((ComparesWith<Strong<Node>, ref<Node>>));
  EXPECT_FALSE((ComparesWith<ref<>, Strong<Node>>));
  EXPECT_TRUE((ComparesWith<ref<Node>, ref<Node>>));
}

}  // namespace
}  // namespace weakref::testing
