// The shared conformance scenarios about weak containers
// (../shared/conformance/scenarios/{wvd,wkd,wset}_*.scn and iterdel_*.scn),
// written out as C++: each test follows one scenario line by line, and each
// expectation is the CPython trace's (`LINE: result`, in comments).
// Scenario objects are support.hpp's Node (three slots, traced); automatic
// collection is off, as in the scenarios.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

class ScenarioTest : public Test {
 protected:
  void SetUp() override {
    Test::SetUp();
    gc::disable();
  }
  void TearDown() override {
    gc::enable();
    Test::TearDown();
  }
  std::vector<std::string> events;
  auto cb(std::string name) {
    return [this, name](const ref<Node>& r) {
      (void)r;
      events.push_back("cb " + name);
    };
  }
};

using Strings = std::vector<std::string>;

template <class C, class F>
Strings sorted(const C& c, F f) {
  Strings out;
  for (const auto& x : c) out.push_back(f(x));
  std::sort(out.begin(), out.end());
  return out;
}

using Wvd = WeakValueDictionary<std::string, Node>;
using Wkd = WeakKeyDictionary<Node, std::string>;
using Wset = WeakSet<Node>;

Strings wvd_items(const Wvd& d) {
  return sorted(d, [](const auto& kv) { return kv.first + "=" + kv.second->label; });
}
Strings wvd_keys(const Wvd& d) {
  return sorted(d, [](const auto& kv) { return kv.first; });
}
Strings wkd_items(const Wkd& d) {
  return sorted(d, [](const auto& kv) { return kv.first->label + "=" + kv.second; });
}
Strings wkd_keys(const Wkd& d) {
  return sorted(d, [](const auto& kv) { return kv.first->label; });
}
Strings wset_items(const Wset& s) {
  return sorted(s, [](const Strong<Node>& n) { return n->label; });
}

TEST_F(ScenarioTest, wvd_basic) {
  Strong<Node> A = make<Node>("A"), B = make<Node>("B"), C = make<Node>("C");
  Wvd D;
  D.set("k1", A);
  D.set("k2", B);
  D.set("k3", A);
  EXPECT_EQ(D.size(), 3U);                                     // 12
  EXPECT_EQ(wvd_keys(D), (Strings{"k1", "k2", "k3"}));         // 13
  EXPECT_EQ(wvd_items(D), (Strings{"k1=A", "k2=B", "k3=A"}));  // 14
  EXPECT_EQ(D.get("k1")->label, "A");                          // 15
  EXPECT_FALSE(D.get("zz"));                                   // 16
  EXPECT_TRUE(D.contains("k2"));                               // 17
  EXPECT_FALSE(D.contains("zz"));                              // 18
  EXPECT_EQ(getweakrefcount(A), 2U);                           // 19
  D.set("k3", C);
  EXPECT_EQ(getweakrefcount(A), 1U);             // 21
  EXPECT_EQ(D.setdefault("k1", B)->label, "A");  // 22
  EXPECT_EQ(D.setdefault("k4", B)->label, "B");  // 23
  EXPECT_EQ(D.pop("k4")->label, "B");            // 24
  EXPECT_THROW(D.pop("k4"), KeyError);           // 25
  EXPECT_THROW(D.del("k4"), KeyError);           // 26
  D.del("k2");
  EXPECT_EQ(wvd_items(D), (Strings{"k1=A", "k3=C"}));  // 28
  A.reset();
  EXPECT_EQ(wvd_items(D), (Strings{"k3=C"}));  // 30
  EXPECT_FALSE(D.get("k1"));                   // 31
  EXPECT_EQ(D.size(), 1U);                     // 32
  D.set("k1", B);
  B->a = C;
  C->a = B;
  B.reset();
  C.reset();
  EXPECT_EQ(D.size(), 2U);            // 38
  EXPECT_EQ(gc::collect(), 2U);       // 39
  EXPECT_TRUE(wvd_items(D).empty());  // 40
  EXPECT_EQ(D.size(), 0U);            // 41
  Strong<Node> E = make<Node>("E");
  D.set("e", E);
  D.clear();
  EXPECT_EQ(D.size(), 0U);            // 45
  EXPECT_EQ(getweakrefcount(E), 0U);  // 46
}

TEST_F(ScenarioTest, wkd_basic) {
  Strong<Node> A = make<Node>("A"), B = make<Node>("B");
  Wkd K;
  K.set(A, "va");
  K.set(B, "vb");
  K.set(A, "va2");
  EXPECT_EQ(getweakrefcount(A), 1U);                    // 10
  EXPECT_EQ(K.get(A), "va2");                           // 11
  EXPECT_TRUE(K.contains(B));                           // 12
  EXPECT_EQ(K.size(), 2U);                              // 13
  EXPECT_EQ(wkd_keys(K), (Strings{"A", "B"}));          // 14
  EXPECT_EQ(wkd_items(K), (Strings{"A=va2", "B=vb"}));  // 15
  Strong<Node> C = make<Node>("C");
  EXPECT_EQ(K.get(C), std::nullopt);  // 17
  EXPECT_FALSE(K.contains(C));        // 18
  EXPECT_THROW(K.del(C), KeyError);   // 19
  EXPECT_THROW(K.pop(C), KeyError);   // 20
  EXPECT_EQ(K.pop(B), "vb");          // 21
  EXPECT_EQ(K.size(), 1U);            // 22
  K.set(B, "vb");
  K.set(C, "vc");
  Strong<Node> oldA = A;
  A = make<Node>("A");
  K.set(A, "vnew");
  EXPECT_EQ(wkd_items(K), (Strings{"A=va2", "A=vnew", "B=vb", "C=vc"}));  // 28
  B.reset();
  EXPECT_EQ(wkd_items(K), (Strings{"A=va2", "A=vnew", "C=vc"}));  // 30
  oldA.reset();
  EXPECT_EQ(wkd_keys(K), (Strings{"A", "C"}));  // 32
  K.del(A);
  EXPECT_EQ(wkd_items(K), (Strings{"C=vc"}));  // 34
  C->a = C;
  C.reset();
  EXPECT_EQ(K.size(), 1U);       // 37
  EXPECT_EQ(gc::collect(), 1U);  // 38
  EXPECT_EQ(K.size(), 0U);       // 39
  K.set(A, "x");
  K.clear();
  EXPECT_TRUE(wkd_items(K).empty());  // 42
  EXPECT_EQ(getweakrefcount(A), 0U);  // 43
}

TEST_F(ScenarioTest, wset_basic) {
  Strong<Node> A = make<Node>("A"), B = make<Node>("B"), C = make<Node>("C");
  Wset S;
  S.add(A);
  S.add(A);
  S.add(B);
  EXPECT_EQ(S.size(), 2U);                        // 10
  EXPECT_EQ(getweakrefcount(A), 1U);              // 11
  EXPECT_TRUE(S.contains(A));                     // 12
  EXPECT_FALSE(S.contains(C));                    // 13
  EXPECT_EQ(wset_items(S), (Strings{"A", "B"}));  // 14
  EXPECT_THROW(S.remove(C), KeyError);            // 15
  S.discard(C);
  S.remove(B);
  EXPECT_EQ(wset_items(S), (Strings{"A"}));  // 18
  S.add(B);
  S.add(C);
  A.reset();
  EXPECT_EQ(wset_items(S), (Strings{"B", "C"}));  // 22
  B->a = C;
  C->a = B;
  B.reset();
  C.reset();
  EXPECT_EQ(S.size(), 2U);             // 27
  EXPECT_EQ(gc::collect(), 2U);        // 28
  EXPECT_TRUE(wset_items(S).empty());  // 29
  Strong<Node> D = make<Node>("D");
  S.add(D);
  S.clear();
  EXPECT_EQ(S.size(), 0U);            // 33
  EXPECT_EQ(getweakrefcount(D), 0U);  // 34
}

TEST_F(ScenarioTest, wset_algebra) {
  Strong<Node> A = make<Node>("A"), B = make<Node>("B"), C = make<Node>("C"), D = make<Node>("D");
  Wset S1{A, B, C};
  Wset S2{B, C, D};
  Wset U = S1.union_(S2);
  Wset I = S1.intersection(S2);
  Wset X = S1.difference(S2);
  Wset Y = S1.symmetric_difference(S2);
  EXPECT_EQ(wset_items(U), (Strings{"A", "B", "C", "D"}));  // 20
  EXPECT_EQ(wset_items(I), (Strings{"B", "C"}));            // 21
  EXPECT_EQ(wset_items(X), (Strings{"A"}));                 // 22
  EXPECT_EQ(wset_items(Y), (Strings{"A", "D"}));            // 23
  EXPECT_TRUE(I <= S1);                                     // 24
  EXPECT_FALSE(S1 <= I);                                    // 25
  EXPECT_FALSE(S1 == S2);                                   // 26
  EXPECT_TRUE(I == I);                                      // 27
  EXPECT_TRUE(X.isdisjoint(S2));                            // 28
  EXPECT_FALSE(S1.isdisjoint(S2));                          // 29
  EXPECT_EQ(getweakrefcount(B), 4U);                        // 30
  B.reset();
  EXPECT_EQ(wset_items(U), (Strings{"A", "C", "D"}));   // 32
  EXPECT_EQ(wset_items(I), (Strings{"C"}));             // 33
  EXPECT_TRUE(I <= S2);                                 // 34
  S1 = S1.union_(S2);                                   // rebinding an operand name
  EXPECT_EQ(wset_items(S1), (Strings{"A", "C", "D"}));  // 36
  EXPECT_TRUE(S1 == U);                                 // 37
  EXPECT_EQ(getweakrefcount(C), 4U);                    // 38
}

// iterdel_*: iterate over the container; at the first element, unbind X (and
// let go of the loop's own copy), then finish the iteration. The container
// is a managed object, so the iteration can keep it alive when its own name
// is the one unbound (as a Python iterator keeps its container).
template <class Container, class Body>
bool iterdel(const Strong<Container>& c, Body&& at_first) {
  Strong<Container> keep = c;
  bool first = true;
  for (auto&& item : *keep) {
    (void)item;
    if (first) {
      first = false;
      at_first();
    }
  }
  return true;
}

struct IterdelWorld {
  Strong<Node> A, B, C, G, H, I;
  ref<Node> ra, rb, rg, rh;
  explicit IterdelWorld(ScenarioTest* t, std::vector<std::string>& events,
                        std::function<std::function<void(const ref<Node>&)>(std::string)> cb) {
    (void)t;
    A = make<Node>("A");
    B = make<Node>("B");
    C = make<Node>("C");
    G = make<Node>("G");
    H = make<Node>("H");
    I = make<Node>("I");
    A->a = B;
    H->a = I;
    I->a = H;
    ra = ref<Node>(A, cb("ra A"));
    rb = ref<Node>(B, cb("rb B"));
    rg = ref<Node>(G, [&events](const ref<Node>&) {
      events.push_back("cb rg G");
      events.push_back("collect -> " + std::to_string(gc::collect()));
    });
    rh = ref<Node>(H, cb("rh H"));
  }
};

template <class Container, class Fill, class Items>
void run_iterdel(ScenarioTest* t, std::vector<std::string>& events,
                 std::function<std::function<void(const ref<Node>&)>(std::string)> cb, Fill fill,
                 Items items, Strings after_a, Strings after_g) {
  IterdelWorld w(t, events, cb);
  Strong<Container> D = make<Container>();
  Strong<Container> O = make<Container>();
  fill(*D, "A", w.A);
  fill(*D, "B", w.B);
  fill(*D, "C", w.C);
  fill(*D, "G", w.G);
  fill(*O, "H", w.H);
  fill(*O, "I", w.I);
  w.B.reset();
  w.H.reset();
  w.I.reset();
  EXPECT_EQ(D->size(), 4U);  // 31
  events.clear();
  EXPECT_TRUE(iterdel(D, [&] { w.A.reset(); }));  // 32
  EXPECT_EQ(events, (Strings{"cb ra A", "cb rb B"}));
  EXPECT_EQ(items(*D), after_a);  // 33
  EXPECT_EQ(D->size(), 2U);       // 34
  events.clear();
  EXPECT_TRUE(iterdel(D, [&] { w.G.reset(); }));  // 35
  EXPECT_EQ(events, (Strings{"cb rg G", "cb rh H", "collect -> 2"}));
  EXPECT_EQ(items(*D), after_g);   // 36
  EXPECT_EQ(D->size(), 1U);        // 37
  EXPECT_TRUE(items(*O).empty());  // 38
  Strong<Container> E = make<Container>();
  bool unbound = false;
  EXPECT_TRUE(iterdel(E, [&] { unbound = true; }));  // 40
  EXPECT_FALSE(unbound);
  EXPECT_TRUE(w.C);                             // 41
  EXPECT_TRUE(iterdel(D, [&] { D.reset(); }));  // 42
  EXPECT_FALSE(D);                              // 43: unbound
  EXPECT_EQ(getweakrefcount(w.C), 0U);          // 44
}

TEST_F(ScenarioTest, iterdel_wvd) {
  run_iterdel<Wvd>(
      this, events, [this](std::string n) { return cb(std::move(n)); },
      [](Wvd& d, const std::string& label, const Strong<Node>& x) { d.set("k" + label, x); },
      wvd_items, Strings{"kC=C", "kG=G"}, Strings{"kC=C"});
}

TEST_F(ScenarioTest, iterdel_wkd) {
  run_iterdel<Wkd>(
      this, events, [this](std::string n) { return cb(std::move(n)); },
      [](Wkd& d, const std::string& label, const Strong<Node>& x) { d.set(x, "v" + label); },
      wkd_items, Strings{"C=vC", "G=vG"}, Strings{"C=vC"});
}

TEST_F(ScenarioTest, iterdel_wset) {
  run_iterdel<Wset>(
      this, events, [this](std::string n) { return cb(std::move(n)); },
      [](Wset& s, const std::string&, const Strong<Node>& x) { s.add(x); }, wset_items,
      Strings{"C", "G"}, Strings{"C"});
}

}  // namespace
}  // namespace weakref::testing
