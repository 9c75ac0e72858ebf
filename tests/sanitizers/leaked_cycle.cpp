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

int main() {
  auto a = weakref::make<Untraced>();
  auto b = weakref::make<Untraced>();
  a->link(b);
  b->link(a);
  weakref::ref<Untraced> wa(a);  // the leak includes a side table
  std::puts("leaking a two-object cycle");
  return 0;
}
