// expect: (deleted function.*std::hash<weakref::proxy)|(std::hash<weakref::proxy<Node>>)
#include <unordered_set>
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  std::unordered_set<weakref::proxy<Node>> s;  // proxies are unhashable
  s.insert(weakref::proxy<Node>(weakref::make<Node>()));
}
