// The program tests/gdb debugs: it makes one of each core handle in each
// interesting state, prints what operator<< says about each ("value NAME =
// TEXT"), and calls gdb_checkpoint(), where gdb stops and prints them with
// the pretty-printers (check_printers.py, which compares the two). Built with -O0 -g so that every
// local is in the debug information.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <weakref/weakref.hpp>

struct Node {
  std::string name;
  weakref::Strong<Node> next;
  explicit Node(std::string n) : name(std::move(n)) {}
  void poke(int) {}
  void trace(weakref::gc::Visitor& v) { v(next); }  // traced: has a GcHead
};

struct Base {
  virtual ~Base() = default;
  int base_value = 1;
};
struct Extra {
  virtual ~Extra() = default;
  long extra_value = 2;
};
// Strong<Base> to a Derived: the Base subobject is not at the object's start
// (Extra, polymorphic too, comes first).
struct Derived : Extra, Base {
  int derived_value = 3;
};

namespace {
template <class T>
void show(const char* name, const T& value) {
  std::ostringstream os;
  os << value;
  std::cout << "value " << name << " = " << os.str() << '\n';
}
}  // namespace

// gdb breaks here; the handles are locals of scenario(), one frame up.
extern "C" __attribute__((noinline)) void gdb_checkpoint() { asm volatile("" ::: "memory"); }

int scenario() {
  int callbacks = 0;

  weakref::Strong<Node> empty;
  auto plain = weakref::make<Node>("plain");  // inline header word
  auto node = weakref::make<Node>("alive");   // side table (weakrefs below)
  auto node_copy = node;                      // strong 2
  weakref::Strong<Base> base = weakref::make<Derived>();
  auto shared = weakref::make<Node>("shared");  // copied on another thread
  std::thread([&shared] { weakref::Strong<Node> copy = shared; }).join();

  weakref::ref<Node> live_ref(node, [&](weakref::ref<Node>) { ++callbacks; });
  weakref::ref<Node> basic_ref(node);
  weakref::ref<Node> empty_ref;
  weakref::ref<Node> dead_ref;
  weakref::proxy<Node> live_proxy(node);
  weakref::proxy<Node> dead_proxy;
  weakref::WeakMethod live_method(node, &Node::poke, [&] { ++callbacks; });
  weakref::WeakMethod<void (Node::*)(int)> dead_method;
  weakref::WeakMethod<void (Node::*)(int)> empty_method;
  weakref::finalize live_fin(node, [] {});
  weakref::finalize dead_fin;
  weakref::Strong<Node> node_locked = live_ref();  // counts on the side table
  weakref::finalize empty_fin;
  weakref::ref<void> void_ref{weakref::Strong<void>(node)};
  {
    auto doomed = weakref::make<Node>("doomed");
    dead_ref = weakref::ref<Node>(doomed, [&](weakref::ref<Node>) { ++callbacks; });
    dead_proxy = weakref::proxy<Node>(doomed);
    dead_method = weakref::WeakMethod(doomed, &Node::poke);
    dead_fin = weakref::finalize(doomed, [&] { ++callbacks; });
  }  // doomed dies: dead_ref's callback, dead_fin's func
  weakref::gc::collect();

  // Weak containers: ten live entries (more than the first segment's
  // eight), one removed, and one whose referent died (claimed by its
  // callback, not drained yet: const calls below leave it there).
  std::vector<weakref::Strong<Node>> members;
  for (int i = 0; i < 10; ++i) members.push_back(weakref::make<Node>("m" + std::to_string(i)));
  auto extra = weakref::make<Node>("extra");
  weakref::WeakSet<Node> set;
  weakref::WeakValueDictionary<int, Node> by_number;
  weakref::WeakKeyDictionary<Node, int> numbers;
  weakref::WeakSet<Node> empty_set;
  set.add(extra);
  by_number.set(-1, extra);
  numbers.set(extra, -1);
  for (int i = 0; i < 10; ++i) {
    set.add(members[i]);
    by_number.set(i, members[i]);
    numbers.set(members[i], i * 10);
  }
  set.discard(extra);
  by_number.del(-1);
  numbers.del(extra);
  {
    auto gone = weakref::make<Node>("gone");
    set.add(gone);
    by_number.set(99, gone);
    numbers.set(gone, 990);
  }

  show("empty", empty);
  show("plain", plain);
  show("node", node);
  show("base", base);
  show("shared", shared);
  show("live_ref", live_ref);
  show("basic_ref", basic_ref);
  show("dead_ref", dead_ref);
  show("live_proxy", live_proxy);
  show("dead_proxy", dead_proxy);
  show("live_method", live_method);
  show("dead_method", dead_method);
  show("live_fin", live_fin);
  show("dead_fin", dead_fin);
  show("void_ref", void_ref);
  show("base.get", static_cast<const void*>(base.get()));
  show("node.use_count", node.use_count());
  show("node.weakrefs", weakref::getweakrefcount(node));
  show("callbacks", callbacks);

  // The containers as gdb shows their children: "0x1, 0x2" and "[k] = v, ...".
  const auto& cset = set;
  const auto& cby_number = by_number;
  const auto& cnumbers = numbers;
  std::ostringstream elements, by_number_entries, numbers_entries;
  const char* sep = "";
  for (const auto& x : cset)
    elements << std::exchange(sep, ", ") << static_cast<const void*>(x.get());
  sep = "";
  for (const auto& [k, v] : cby_number)
    by_number_entries << std::exchange(sep, ", ") << '[' << k
                      << "] = " << static_cast<const void*>(v.get());
  sep = "";
  for (const auto& [k, v] : cnumbers)
    numbers_entries << std::exchange(sep, ", ") << '[' << static_cast<const void*>(k.get())
                    << "] = " << v;
  show("set.size", cset.size());
  show("set.elements", elements.str());
  show("by_number.size", cby_number.size());
  show("by_number.entries", by_number_entries.str());
  show("numbers.size", cnumbers.size());
  show("numbers.entries", numbers_entries.str());
  std::cout << std::flush;

  gdb_checkpoint();

  return callbacks == 2 ? 0 : 1;
}

int main() { return scenario(); }
