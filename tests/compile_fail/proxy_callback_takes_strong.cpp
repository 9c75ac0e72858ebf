// expect: the callback must be callable as callback\(weakref::proxy<T>\)
// A callback that wants the (dead) object as a Strong.
#include <weakref/weakref.hpp>
struct Node {
  int value = 0;
};
int main() {
  auto n = weakref::make<Node>();
  weakref::proxy<Node> p(n, [](const weakref::Strong<Node>& dead) { (void)dead; });
}
