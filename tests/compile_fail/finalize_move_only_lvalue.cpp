// expect: each must be copyable, or movable and passed as an rvalue
#include <memory>
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  auto node = weakref::make<Node>();
  auto file = std::make_unique<int>(3);
  // A move-only argument is stored by value: it must be given as an rvalue
  // (std::move(file)); an lvalue would have to be copied.
  weakref::finalize f(
      node, [](std::unique_ptr<int>) {}, file);
}
