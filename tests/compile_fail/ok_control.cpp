// The harness control: this must compile.
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  auto n = weakref::make<Node>();
  weakref::ref<Node> r(n);
  weakref::proxy<Node> p(n);
  return r() ? 0 : 1;
}
