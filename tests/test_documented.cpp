// What docs/python-mapping.md says that only the headers used to say (issue
// #12, item 11), each as the docs state it, so that the docs stay true.
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using DocumentedTest = Test;

// "ref r(obj) deduces ref<T>" (also with a callback; proxy, WeakMethod).
TEST_F(DocumentedTest, DeductionGivesTheReferentsType) {
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  ref r(n, [&calls](ref<Node> dead) {
    EXPECT_FALSE(dead());
    ++calls;
  });
  proxy p(n);
  WeakMethod m(n, &Node::name);
  EXPECT_EQ(r()->label, "n");  // r() is a Strong<Node>
  EXPECT_EQ(p->label, "n");
  EXPECT_EQ(m(), std::optional<std::string>("n"));
  n.reset();
  EXPECT_EQ(calls, 1);
}

// "make<Point>(1, 2) builds a plain struct with braces when no constructor
// matches; fields not given are value-initialized or take their defaults".
struct Point {
  int x;
  int y;
  std::string label = "origin";
};
TEST_F(DocumentedTest, MakeBuildsPlainStructs) {
  Strong<Point> p = make<Point>(1, 2);
  EXPECT_EQ(p->x + p->y, 3);
  EXPECT_EQ(p->label, "origin");
}

// "std::variant in trace(): the alternative it holds is visited".
struct Shape {
  std::variant<std::monostate, Strong<Shape>, ref<Shape>> link;
  explicit Shape(int) {}  // a constructor: not an aggregate, so trace() it is
  void trace(gc::Visitor& v) { v(link); }
};
TEST_F(DocumentedTest, VariantMembersAreTraced) {
  Strong<Shape> a = make<Shape>(1);
  Strong<Shape> b = make<Shape>(2);
  a->link = b;
  b->link = a;
  EXPECT_EQ(gc::get_referents(a).size(), 1U);
  ref<Shape> wa(a);
  a.reset();
  b.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_TRUE(wa.expired());
}

// "WeakSet<void>, WeakValueDictionary<K, void>, WeakKeyDictionary<void, V>
// hold objects of any type; dynamic_pointer_cast gets a typed one back".
TEST_F(DocumentedTest, VoidContainersHoldObjectsOfAnyType) {
  Strong<Node> n = make<Node>("n");
  Strong<Point> p = make<Point>(1, 2);
  WeakSet<void> set{n, p};
  WeakValueDictionary<std::string, void> by_name;
  by_name.set("node", n);
  by_name.set("point", p);
  WeakKeyDictionary<void, int> sizes;
  sizes.set(n, 1);
  sizes.set(p, 2);
  EXPECT_EQ(set.size(), 2U);
  EXPECT_EQ(dynamic_pointer_cast<Point>(by_name.at("point"))->x, 1);
  EXPECT_FALSE(dynamic_pointer_cast<Point>(by_name.at("node")));
  EXPECT_EQ(sizes.at(p), 2);
  n.reset();
  EXPECT_EQ(set.size(), 1U);
  EXPECT_FALSE(by_name.contains("node"));
}

// "tp_finalize runs first, once; self(this) works in it, and storing that
// Strong somewhere resurrects the object".
TEST_F(DocumentedTest, SelfInsideTpFinalizeResurrects) {
  static Strong<void>* saved = nullptr;
  static int finalized = 0;
  Strong<void> keep;
  saved = &keep;
  struct Phoenix {
    void tp_finalize() {
      ++finalized;
      *saved = self(this);
    }
  };
  Strong<Phoenix> p = make<Phoenix>();
  ref<Phoenix> r(p);
  p.reset();
  EXPECT_EQ(finalized, 1);
  EXPECT_FALSE(r.expired());  // resurrected: the weakref was not cleared
  keep.reset();               // dies now, without a second tp_finalize
  EXPECT_EQ(finalized, 1);
  EXPECT_TRUE(r.expired());
  saved = nullptr;
  finalized = 0;
}

// "finalize stores func and args by value (moved or copied); std::ref(x)
// refers to x".
TEST_F(DocumentedTest, FinalizeStoresItsFunctionAndArgumentsByValue) {
  Strong<Node> n = make<Node>("n");
  std::vector<std::string> seen;
  std::string text = "before";
  int counter = 0;
  auto record = [&seen](const std::string& s, int& c) {
    seen.push_back(s);
    ++c;
  };
  finalize f(n, record, text, std::ref(counter));
  text = "after";  // the finalizer has its own copy
  n.reset();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(seen[0], "before");
  EXPECT_EQ(counter, 1);  // std::ref: the caller's counter
}

}  // namespace
}  // namespace weakref::testing
