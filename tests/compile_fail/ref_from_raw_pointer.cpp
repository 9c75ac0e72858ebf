// expect: must be made from a weakref::Strong
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  Node n;
  weakref::ref<Node> r(&n);  // not created by weakref::make
}
