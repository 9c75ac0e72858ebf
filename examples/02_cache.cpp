// PyMOTW's weakref_valuedict demo: a cache of expensive objects, run once
// with a plain std::map (the cache's strong references keep every object
// alive after its users let go) and once with a WeakValueDictionary (an
// object goes, and its entry with it, when the last user lets go). Then a
// lookup of a vanished key: get() returns null, at() throws KeyError.
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include <weakref/weakref.hpp>

using weakref::Strong;

struct ExpensiveObject {
  std::string name;
  explicit ExpensiveObject(std::string n) : name(std::move(n)) {}
  ~ExpensiveObject() { std::cout << "    (Deleting " << *this << ")\n"; }
  friend std::ostream& operator<<(std::ostream& os, const ExpensiveObject& o) {
    return os << "ExpensiveObject(" << o.name << ")";
  }
};

using PlainCache = std::map<std::string, Strong<ExpensiveObject>>;
using WeakCache = weakref::WeakValueDictionary<std::string, ExpensiveObject>;

// Python's cache[name] = o, in each cache's spelling.
void store(PlainCache& c, const std::string& k, const Strong<ExpensiveObject>& v) { c[k] = v; }
void store(WeakCache& c, const std::string& k, const Strong<ExpensiveObject>& v) { c.set(k, v); }

// Both caches iterate as (key, value) pairs: std::map in key order, the weak
// dictionary in insertion order, holding each value strongly only while the
// loop is on its entry.
template <class Cache>
void show(const char* when, const Cache& cache) {
  std::vector<std::string> keys;
  for (const auto& [name, value] : cache) keys.push_back(name);
  std::cout << "\n  " << when << ", cache contains: [";
  for (std::size_t i = 0; i < keys.size(); ++i) std::cout << (i ? ", '" : "'") << keys[i] << "'";
  std::cout << "]\n";
  for (const auto& [name, value] : cache) std::cout << "    " << name << " = " << *value << "\n";
}

template <class Cache>
void demo(const char* cache_type) {
  std::cout << "CACHE TYPE: " << cache_type << "\n";
  // The users of the objects: they hold them, so the weak cache keeps its
  // entries as long as they do.
  std::vector<Strong<ExpensiveObject>> all_refs;
  Cache cache;
  for (const char* name : {"one", "two", "three"}) {
    auto o = weakref::make<ExpensiveObject>(name);
    store(cache, name, o);
    all_refs.push_back(std::move(o));
  }
  std::cout << "  all_refs = [";
  for (std::size_t i = 0; i < all_refs.size(); ++i) std::cout << (i ? ", " : "") << *all_refs[i];
  std::cout << "]\n";
  show("Before", cache);

  // Every user lets go (in order: std::vector's destruction order is
  // unspecified). Only the cache may still refer to the objects.
  std::cout << "\n  Cleanup:\n";
  for (auto& o : all_refs) o.reset();
  all_refs.clear();

  show("After", cache);
  std::cout << "  demo returning\n";
  // The cache goes with the demo; erased key by key so that the output does
  // not depend on std::map's unspecified destruction order.
  while (!cache.empty()) {
    const std::string first = cache.begin()->first;
    cache.erase(first);
  }
}

int main() {
  demo<PlainCache>("std::map<std::string, Strong<ExpensiveObject>>");
  std::cout << "\n";
  demo<WeakCache>("weakref::WeakValueDictionary<std::string, ExpensiveObject>");

  // Looking up an entry whose value died: Python's cache.get(k) is None and
  // cache[k] raises KeyError.
  std::cout << "\nLooking up a vanished key:\n";
  WeakCache cache;
  auto four = weakref::make<ExpensiveObject>("four");
  cache.set("four", four);
  std::cout << "  cache.get(\"four\") -> " << *cache.get("four") << "\n";
  four.reset();  // the last strong reference: "four" dies, its entry vanishes at once
  std::cout << "  size() = " << cache.size() << ", contains(\"four\") = " << std::boolalpha
            << cache.contains("four") << "\n";
  std::cout << "  cache.get(\"four\") -> " << (cache.get("four") ? "an object" : "null") << "\n";
  try {
    cache.at("four");
  } catch (const weakref::KeyError& e) {
    std::cout << "  cache.at(\"four\") -> weakref::KeyError: " << e.what() << "\n";
  }
}
