// expect: func cannot be called with args
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  auto node = weakref::make<Node>();
  weakref::finalize f(
      node, [](int, int) {}, 1);  // one argument short
}
