// expect: cannot be weakly referenced
// With deduction (clang 14 deduced ref<void> here and compiled it: issue #12).
#include <weakref/weakref.hpp>
int main() {
  weakref::ref r(weakref::make<int>(5));  // int objects cannot be weakly referenced
}
