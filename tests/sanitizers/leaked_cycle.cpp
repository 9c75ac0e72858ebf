// A cycle of managed objects that nothing can free (their type has no
// trace(), so the collector does not see them): the user's leak checker must
// report its blocks as lost (valgrind: definitely/indirectly lost;
// LeakSanitizer: a direct/indirect leak), though the library pools its
// blocks otherwise (src/alloc.cpp, "Routing").
#include <cstdio>
#include <weakref/weakref.hpp>

class Untraced {  // a class with a Strong member and no trace()
 public:
  Untraced() = default;
  void link(weakref::Strong<Untraced> to) { next_ = std::move(to); }
  char payload[64] = {};

 private:
  weakref::Strong<Untraced> next_;
};

// In a frame of its own, and the stack it used overwritten afterwards: a
// leak checker scans the stack as a root, and a stale copy of a pointer
// (left there by inlined code, at -O0 in particular) would hide the leak.
[[gnu::noinline]] void leak_a_cycle() {
  auto a = weakref::make<Untraced>();
  auto b = weakref::make<Untraced>();
  a->link(b);
  b->link(a);
  weakref::ref<Untraced> wa(a);  // the leak includes a side table
}

[[gnu::noinline]] void scrub_stack() {
  volatile char junk[16384];
  for (volatile char& c : junk) c = 0;
}

int main() {
  leak_a_cycle();
  scrub_stack();
  std::puts("leaking a two-object cycle");
  return 0;
}
