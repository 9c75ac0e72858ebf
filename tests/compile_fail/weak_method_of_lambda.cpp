// expect: WeakMethod binds a pointer to a member function
#include <weakref/weakref.hpp>
struct Button {};
int main() {
  auto b = weakref::make<Button>();
  weakref::WeakMethod m(b, [](Button&) {});
}
