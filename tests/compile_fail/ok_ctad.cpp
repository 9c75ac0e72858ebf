// Class template argument deduction gives the referent's type on every
// compiler (clang 14 deduced ref<void> from a non-const Strong: issue #12),
// WeakSet's element type included; the weak dictionaries' views are
// borrowed ranges.
#include <ranges>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>
#include <weakref/weakref.hpp>

struct Node {
  int value = 1;
  void poke() {}
  int peek() const { return value; }
};
struct Derived : Node {};

using weakref::finalize;
using weakref::make;
using weakref::proxy;
using weakref::ref;
using weakref::Strong;
using weakref::WeakMethod;
using weakref::WeakSet;

int main() {
  Strong<Node> n = make<Node>();
  const Strong<Node> cn = n;

  ref r1(n);             // non-const lvalue
  ref r2(cn);            // const lvalue
  ref r3(make<Node>());  // rvalue
  ref r4(std::move(n));
  n = cn;
  ref r5(n, [](ref<Node> dead) { (void)dead; });  // typed callback
  ref r6(n, [] {});                               // callback without a parameter
  ref r7(n, nullptr);                             // no callback
  ref r8 = r1;                                    // copy deduction
  ref r9(cn, nullptr);
  ref r10(cn, [](ref<Node>) {});
  static_assert(std::is_same_v<decltype(r1), ref<Node>>);
  static_assert(std::is_same_v<decltype(r2), ref<Node>>);
  static_assert(std::is_same_v<decltype(r3), ref<Node>>);
  static_assert(std::is_same_v<decltype(r4), ref<Node>>);
  static_assert(std::is_same_v<decltype(r5), ref<Node>>);
  static_assert(std::is_same_v<decltype(r6), ref<Node>>);
  static_assert(std::is_same_v<decltype(r7), ref<Node>>);
  static_assert(std::is_same_v<decltype(r8), ref<Node>>);
  static_assert(std::is_same_v<decltype(r9), ref<Node>>);
  static_assert(std::is_same_v<decltype(r10), ref<Node>>);
  int sum = r1()->value + r2()->value;  // the referent's members

  Strong<Derived> d = make<Derived>();
  ref rd(d);
  static_assert(std::is_same_v<decltype(rd), ref<Derived>>);
  ref<Node> rb(d);  // explicit base: still fine
  ref<> any(d);     // explicit ref<void>

  proxy p1(n);
  proxy p2(cn, [](proxy<Node>) {});
  proxy p3(make<Node>());
  proxy p4(cn, nullptr);
  proxy p5(n, nullptr);
  static_assert(std::is_same_v<decltype(p4), proxy<Node>>);
  static_assert(std::is_same_v<decltype(p5), proxy<Node>>);
  static_assert(std::is_same_v<decltype(p1), proxy<Node>>);
  static_assert(std::is_same_v<decltype(p2), proxy<Node>>);
  static_assert(std::is_same_v<decltype(p3), proxy<Node>>);
  sum += p1->value;

  WeakMethod m1(n, &Node::poke);
  WeakMethod m2(cn, &Node::peek, [] {});
  WeakMethod m3(d, &Node::peek);
  static_assert(std::is_same_v<decltype(m1), WeakMethod<void (Node::*)()>>);
  static_assert(std::is_same_v<decltype(m2), WeakMethod<int (Node::*)() const>>);
  static_assert(std::is_same_v<decltype(m3), WeakMethod<int (Node::*)() const>>);

  // WeakSet([a, b]): from an initializer list, a range or an iterator pair
  // of Strong<T>; a copy keeps its key policy.
  WeakSet s1{n, cn};
  std::vector<Strong<Node>> v{n};
  WeakSet s2(v);
  WeakSet s3(v.begin(), v.end());
  WeakSet s4{d};
  std::vector<Strong<Derived>> vd{d};
  WeakSet s5(vd);
  WeakSet s6(std::set<Strong<Node>>{n});
  WeakSet<std::string, weakref::by_value<>> by_value{make<std::string>("v")};
  WeakSet s7(by_value);
  WeakSet s8 = s1;
  static_assert(std::is_same_v<decltype(s1), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(s2), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(s3), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(s4), WeakSet<Derived>>);
  static_assert(std::is_same_v<decltype(s5), WeakSet<Derived>>);
  static_assert(std::is_same_v<decltype(s6), WeakSet<Node>>);
  static_assert(std::is_same_v<decltype(s7), WeakSet<std::string, weakref::by_value<>>>);
  static_assert(std::is_same_v<decltype(s8), WeakSet<Node>>);
  sum += static_cast<int>(s1.size() + s2.size() + s3.size() + s4.size() + s5.size() + s6.size() +
                          s7.size() + s8.size());

  // The dictionaries' views are borrowed ranges: ranges algorithms on a
  // temporary view return iterators, not std::ranges::dangling.
  weakref::WeakValueDictionary<std::string, Node> wvd;
  weakref::WeakKeyDictionary<Node, int> wkd;
  static_assert(std::ranges::borrowed_range<decltype(wvd.keys())>);
  static_assert(std::ranges::borrowed_range<decltype(wvd.values())>);
  static_assert(std::ranges::borrowed_range<decltype(wvd.items())>);
  static_assert(std::ranges::borrowed_range<decltype(wkd.keys())>);
  static_assert(std::ranges::borrowed_range<decltype(std::as_const(wkd).values())>);
  sum += static_cast<int>(std::ranges::find(wvd.keys(), std::string("a")) != wvd.keys().end());

  finalize f1(n, [] {});  // finalize is not a template
  finalize f2(
      make<Node>(), [](int) {}, 3);
  return sum + static_cast<int>(f1.alive()) + static_cast<int>(rb.expired()) +
         static_cast<int>(any.expired()) + static_cast<int>(f2.alive());
}
