// A use-after-free of a dead managed object through a raw pointer: the
// user's memory tool must report it (AddressSanitizer: heap-use-after-free;
// valgrind: an invalid read), though the library itself is built without
// instrumentation and pools its blocks otherwise (src/alloc.cpp, "Routing").
#include <cstdio>
#include <weakref/weakref.hpp>

struct Victim {
  int value = 42;
};

int main() {
  weakref::Strong<Victim> v = weakref::make<Victim>();
  weakref::ref<Victim> r(v);  // a side table and a weakref object too
  volatile int* raw = &v->value;
  v.reset();  // the object dies: its block is freed, r is cleared
  std::printf("dead: %d\n", static_cast<int>(r.expired()));
  std::printf("read after free: %d\n", *raw);  // the bug the tool must see
  return 0;
}
