// expect: must be made from a weakref::Strong
#include <memory>
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  auto n = std::make_shared<Node>();
  weakref::ref<Node> r(n);  // a std::shared_ptr is not a managed object
}
