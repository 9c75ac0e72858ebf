// expect: d\[k\] stands for the lookup, not the value
#include <string>
#include <weakref/weakref.hpp>
struct Image {
  int width = 0;
};
int main() {
  weakref::WeakValueDictionary<std::string, Image> cache;
  weakref::Strong<Image> a = weakref::make<Image>();
  cache["a"] = a;
  // Python's `img = cache["a"]` binds the value; this keeps a lookup that
  // would run again, in a dictionary that may be gone by then.
  auto img = cache["a"];
  return img->width;
}
