// expect: cannot be weakly referenced
#include <weakref/weakref.hpp>
int main() {
  auto d = weakref::make<double>(1.5);
  weakref::proxy<double> p(d);
}
