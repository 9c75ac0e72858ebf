// expect: cannot be weakly referenced
#include <weakref/weakref.hpp>
struct Secret {};
template <>
inline constexpr bool weakref::enable_weakref<Secret> = false;
int main() {
  auto s = weakref::make<Secret>();
  weakref::ref<Secret> r(s);  // Secret opted out (Python: __slots__ without __weakref__)
}
