// PyMOTW's graph demo: a three-node cycle survives while referenced, is not
// freed by reference counting when the last outside reference goes, and is
// found by gc::collect() (DEBUG_LEAK keeps it in gc::garbage() until the cycle
// is broken by hand). The WeakGraph variant closes the cycle with a proxy,
// so reference counting alone frees it.
#include <iostream>
#include <string>
#include <weakref/weakref.hpp>

namespace gc = weakref::gc;

// A node holding its successor strongly, or (WeakGraph) through a proxy
// when the successor already reaches this node.
struct Graph {
  std::string name;
  weakref::Strong<Graph> other;
  weakref::proxy<Graph> weak_other;
  bool weak_graph = false;

  Graph(std::string n, bool weak) : name(std::move(n)), weak_graph(weak) {}

  void set_next(const weakref::Strong<Graph>& next) {
    std::cout << name << ".set_next(" << (next ? next->name : "None") << ")\n";
    other = nullptr;
    weak_other = {};
    if (next && weak_graph && reaches(*next, *this))
      weak_other = next;  // closing the cycle: hold it weakly
    else
      other = next;
  }
  Graph* successor() const {
    if (other) return other.get();
    auto s = weak_other.lock();
    return s.get();  // the proxy's referent stays alive: someone holds it
  }
  static bool reaches(const Graph& from, const Graph& target) {
    for (const Graph* n = &from; n; n = n->successor()) {
      if (n == &target) return true;
      if (n->successor() == &from) break;
    }
    return false;
  }
  std::string path() const {
    std::string s = name;
    for (const Graph* n = successor(); n; n = n->successor()) {
      s += "->" + n->name;
      if (n == this) break;
    }
    return s;
  }
  void trace(gc::Visitor& v) { v(other, weak_other); }
  void tp_finalize() { std::cout << "(Deleting " << name << ")\n"; }
};

void collect_and_show_garbage() {
  std::cout << std::flush;  // the collector's debug lines go to stderr
  const std::size_t unreachable = gc::collect();
  std::cerr << std::flush;
  std::cout << "Unreachable: " << unreachable << "\n";
  std::cout << "Garbage: [";
  const char* sep = "";
  for (const auto& g : gc::garbage()) {
    std::cout << sep << weakref::exact_pointer_cast<Graph>(g)->name;
    sep = ", ";
  }
  std::cout << "]\n";
}

void demo(bool weak) {
  std::cout << "Set up graph:\n";
  auto one = weakref::make<Graph>("one", weak);
  auto two = weakref::make<Graph>("two", weak);
  auto three = weakref::make<Graph>("three", weak);
  one->set_next(two);
  two->set_next(three);
  three->set_next(one);
  std::cout << "\nGraph:\n" << one->path() << "\n";
  collect_and_show_garbage();
  three = nullptr;
  two = nullptr;
  std::cout << "\nAfter 2 references removed:\n" << one->path() << "\n";
  collect_and_show_garbage();
  std::cout << "\nRemoving last reference:\n";
  one = nullptr;
  collect_and_show_garbage();
}

int main() {
  gc::disable();  // every collection below is an explicit one
  gc::set_debug(gc::DEBUG_LEAK);
  std::cout << "Setting up the cycle\n\n";
  demo(false);
  std::cout << "\nBreaking the cycle and cleaning up garbage\n\n";
  for (const auto& g : gc::garbage()) weakref::exact_pointer_cast<Graph>(g)->set_next(nullptr);
  gc::clear_garbage();
  std::cout << "\n";
  collect_and_show_garbage();

  gc::set_debug(0);
  std::cout << "\nThe same graph with a weak edge closing the cycle\n\n";
  demo(true);
  gc::enable();
}
