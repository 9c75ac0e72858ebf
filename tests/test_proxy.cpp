// weakref::proxy<T>: Python's weakref.proxy.
#include <map>
#include <sstream>
#include <string>
#include <variant>

#include "support.hpp"

namespace weakref::testing {
namespace {

struct Counter {
  int value = 0;
  int operator()(int x) const { return value + x; }
  int operator[](int i) const { return value * i; }
  friend bool operator==(const Counter& a, const Counter& b) { return a.value == b.value; }
};

// Comparable with an int only (as a Python class whose __eq__ takes numbers).
struct Score {
  int points = 0;
  friend bool operator==(const Score& s, int n) { return s.points == n; }
};

using ProxyTest = Test;

TEST_F(ProxyTest, UsedLikeTheObject) {
  Strong<Node> n = make<Node>("A");
  proxy<Node> p(n);
  EXPECT_EQ(p->label, "A");
  EXPECT_EQ((*p).label, "A");
  p->label = "B";
  EXPECT_EQ(n->label, "B");
  EXPECT_EQ(p->add(2, 3), 5);
}

TEST_F(ProxyTest, DeadProxyThrowsReferenceErrorWithCPythonMessage) {
  Strong<Node> n = make<Node>("A");
  proxy<Node> p(n);
  n.reset();
  EXPECT_THROW((void)p->label, ReferenceError);
  EXPECT_THROW((void)*p, ReferenceError);
  try {
    (void)p->label;
    FAIL();
  } catch (const ReferenceError& e) {
    EXPECT_STREQ(e.what(), "weakly-referenced object no longer exists");
  }
  EXPECT_FALSE(p.lock());
  EXPECT_TRUE(p.expired());
}

TEST_F(ProxyTest, ArrowKeepsObjectAliveForTheCall) {
  struct SelfDropper {
    Strong<SelfDropper> keep;
    int drop_and_read() {
      keep.reset();  // the last outside reference goes during the call
      return 7;
    }
  };
  Strong<SelfDropper> s = make<SelfDropper>();
  s->keep = s;
  proxy<SelfDropper> p(s);
  s.reset();
  EXPECT_EQ(p->drop_and_read(), 7);
  EXPECT_TRUE(p.expired());
}

TEST_F(ProxyTest, BasicProxyReusedCallbackProxyIsNew) {
  Strong<Node> n = make<Node>();
  proxy<Node> p1(n);
  proxy<Node> p2(n);
  EXPECT_TRUE(p1.is(p2));
  proxy<Node> p3(n, [](const proxy<Node>&) {});
  EXPECT_FALSE(p1.is(p3));
  ref<Node> r(n);
  EXPECT_FALSE(r.is(p1));
  EXPECT_EQ(getweakrefcount(n), 3U);
}

TEST_F(ProxyTest, CallbackReceivesTheProxy) {
  Strong<Node> n = make<Node>();
  proxy<Node> seen;
  proxy<Node> p(n, [&](proxy<Node> dead) { seen = dead; });
  n.reset();
  EXPECT_TRUE(seen.is(p));
}

TEST_F(ProxyTest, ForwardsCallSubscriptAndEquality) {
  Strong<Counter> c = make<Counter>();
  c->value = 10;
  Strong<Counter> d = make<Counter>();
  d->value = 10;
  proxy<Counter> pc(c);
  proxy<Counter> pd(d);
  EXPECT_EQ(pc(5), 15);
  EXPECT_EQ(pc[3], 30);
  EXPECT_TRUE(pc == pd);  // compares the referents, as Python forwards ==
  d.reset();
  EXPECT_THROW((void)(pc == pd), ReferenceError);
}

// Python's `proxy == obj` and `proxy == 42` call the referent's __eq__ with
// obj / 42 (proxy_richcompare unwraps proxies only).
TEST_F(ProxyTest, EqualityForwardsToTheReferentWithAnyOperand) {
  Strong<Counter> c = make<Counter>();
  c->value = 10;
  Strong<Counter> same = make<Counter>();
  same->value = 10;
  Strong<Counter> other = make<Counter>();
  other->value = 11;
  proxy<Counter> p(c);
  const std::size_t before = getweakrefcount(same);
  EXPECT_TRUE(p == same);
  EXPECT_TRUE(same == p);
  EXPECT_TRUE(p != other);
  EXPECT_FALSE(other == p);
  EXPECT_FALSE(p == Strong<Counter>());
  EXPECT_EQ(getweakrefcount(same), before);  // no proxy made for the operand
  EXPECT_TRUE(p == Counter{10});
  EXPECT_TRUE(Counter{11} != p);

  Strong<Score> s = make<Score>();
  s->points = 3;
  proxy<Score> ps(s);
  EXPECT_TRUE(ps == 3);
  EXPECT_TRUE(3 == ps);
  EXPECT_TRUE(ps != 4);
  static_assert(!std::equality_comparable_with<proxy<Score>, std::string>);
  static_assert(!std::equality_comparable_with<proxy<Score>, Strong<Score>>);

  c.reset();
  EXPECT_THROW((void)(p == same), ReferenceError);
  EXPECT_THROW((void)(same == p), ReferenceError);
  EXPECT_THROW((void)(Counter{10} == p), ReferenceError);
  EXPECT_THROW((void)(p == Strong<Counter>()), ReferenceError);
  s.reset();
  EXPECT_THROW((void)(ps == 3), ReferenceError);
}

// The forwarding == is a friend of proxy<T>, which ADL also finds for types
// that merely name proxy<T> (a container's iterator over variants holding
// proxies): comparing those must neither pick it nor recurse in its
// constraint.
TEST_F(ProxyTest, ForwardingEqualityStaysOutOfOtherTypesComparisons) {
  using Slot = std::variant<int, proxy<Counter>>;
  std::map<std::string, Slot> m;
  EXPECT_TRUE(m.begin() == m.end());
  Strong<Counter> c = make<Counter>();
  m.emplace("p", proxy<Counter>(c));
  EXPECT_TRUE(m.begin() != m.end());
  EXPECT_TRUE(m.at("p") == m.at("p"));  // variant's ==: the proxies' referents
}

TEST_F(ProxyTest, IsNotHashable) {
  EXPECT_FALSE(std::is_default_constructible_v<std::hash<proxy<Node>>>);
}

TEST_F(ProxyTest, StreamsLikeCPython) {
  Strong<Node> n = make<Node>();
  proxy<Node> p(n);
  std::ostringstream alive;
  alive << p;
  EXPECT_THAT(alive.str(),
              ::testing::MatchesRegex(
                  "<weakproxy at 0x[0-9a-f]+ to weakref::testing::Node at 0x[0-9a-f]+>"));
  n.reset();
  std::ostringstream dead;
  dead << p;
  EXPECT_THAT(dead.str(), ::testing::MatchesRegex("<weakproxy at 0x[0-9a-f]+; dead>"));
}

TEST_F(ProxyTest, NullCallbackIsNoCallback) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  proxy<Node> basic(n);
  std::function<void(proxy<Node>)> empty;
  proxy<Node> a(n, nullptr);
  proxy<Node> b(n, empty);
  EXPECT_TRUE(a.is(basic));
  EXPECT_TRUE(b.is(basic));
  EXPECT_FALSE(b.has_callback());
  EXPECT_EQ(getweakrefcount(n), 1U);
  n.reset();
  EXPECT_TRUE(capture.messages.empty());
}

TEST_F(ProxyTest, HasCallbackIsFalseOnceCleared) {
  Strong<Node> n = make<Node>();
  proxy<Node> p(n, [](const proxy<Node>&) {});
  EXPECT_TRUE(p.has_callback());
  n.reset();
  EXPECT_FALSE(p.has_callback());
}

TEST_F(ProxyTest, ForwardsTruthOfTheReferent) {
  // bool(proxy) is bool(referent) (test_proxy_bool), not liveness.
  struct Flag {
    bool on = false;
    explicit operator bool() const { return on; }
  };
  Strong<Flag> f = make<Flag>();
  proxy<Flag> p(f);
  EXPECT_FALSE(static_cast<bool>(p));
  f->on = true;
  EXPECT_TRUE(static_cast<bool>(p));
  f.reset();
  EXPECT_THROW((void)static_cast<bool>(p), ReferenceError);
  EXPECT_FALSE((std::is_constructible_v<bool, proxy<Node>>));  // Node has no truth
}

}  // namespace
}  // namespace weakref::testing
