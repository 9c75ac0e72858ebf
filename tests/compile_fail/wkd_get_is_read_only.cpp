// expect: (discards qualifiers)|(not marked const)
#include <vector>
#include <weakref/weakref.hpp>
struct Node {};
int main() {
  weakref::WeakKeyDictionary<Node, std::vector<int>> d;
  weakref::Strong<Node> k = weakref::make<Node>();
  d.set(k, {});
  d.get(k)->push_back(1);  // would change a copy: get() is read-only (use d[k] or d.at(k))
}
