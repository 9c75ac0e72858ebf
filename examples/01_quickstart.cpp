// The README's example: weak references with death callbacks, a proxy, a
// finalizer, and a cycle that only the collector can free.
#include <iostream>
#include <weakref/weakref.hpp>

struct Node {
  std::string name;
  weakref::Strong<Node> next;  // a strong edge the collector can see
  explicit Node(std::string n) : name(std::move(n)) {}
  void trace(weakref::gc::Visitor& v) { v(next); }
};

int main() {
  auto a = weakref::make<Node>("a");
  weakref::ref<Node> r(a, [](weakref::ref<Node>) { std::cout << "a died\n"; });
  weakref::proxy<Node> p(a);
  weakref::finalize f(a, [] { std::cout << "finalizer ran\n"; });
  std::cout << "alive: " << r()->name << ", via proxy: " << p->name << "\n";
  a.reset();  // last strong reference: finalizer and callback run, newest first
  std::cout << "r() is " << (r() ? "alive" : "null") << "\n";
  try {
    std::cout << p->name;
  } catch (const weakref::ReferenceError& e) {
    std::cout << "ReferenceError: " << e.what() << "\n";
  }

  auto x = weakref::make<Node>("x"), y = weakref::make<Node>("y");
  x->next = y, y->next = x;  // a cycle: reference counting alone leaks it
  weakref::ref<Node> rx(x);
  x.reset(), y.reset();
  std::cout << "cycle still alive: " << (rx() ? "yes" : "no") << "\n";
  std::cout << "gc::collect() found " << weakref::gc::collect() << " unreachable objects\n";
  std::cout << "cycle still alive: " << (rx() ? "yes" : "no") << "\n";
}
