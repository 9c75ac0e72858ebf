// expect: the callback must be callable as callback\(weakref::WeakMethod<Pmf>\)
#include <weakref/weakref.hpp>
struct Button {
  void click() {}
};
int main() {
  auto b = weakref::make<Button>();
  weakref::WeakMethod m(b, &Button::click, [](weakref::WeakMethod<void (Button::*)()>, int) {});
}
