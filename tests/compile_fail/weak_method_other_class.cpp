// expect: obj must be a Strong to a T
// The member function of another class than the object's.
#include <weakref/weakref.hpp>
struct Button {
  void click() {}
};
struct Label {
  void click() {}
};
int main() {
  auto b = weakref::make<Button>();
  weakref::WeakMethod m(b, &Label::click);
}
