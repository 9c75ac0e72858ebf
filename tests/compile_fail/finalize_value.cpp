// expect: must be given a weakref::Strong
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  Node n;
  weakref::finalize f(n, [] {});
}
