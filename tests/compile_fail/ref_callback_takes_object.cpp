// expect: the callback must be callable as callback\(weakref::ref<T>\)
// A callback written for the object (Python passes the dead weakref).
#include <weakref/weakref.hpp>
struct Node {
  int value = 0;
};
int main() {
  auto n = weakref::make<Node>();
  weakref::ref r(n, [](Node& dead) { (void)dead; });
}
