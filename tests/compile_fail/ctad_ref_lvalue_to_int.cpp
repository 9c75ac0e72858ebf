// expect: cannot be weakly referenced
#include <weakref/weakref.hpp>
int main() {
  auto i = weakref::make<int>(5);
  weakref::ref r(i, [] {});
}
