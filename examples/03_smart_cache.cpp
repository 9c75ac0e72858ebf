// A "smart cache": a WeakValueDictionary that also keeps the N most recently
// used values alive. An object stays cached while anyone uses it (the weak
// dictionary finds it) or while it is among the N most recent (the MRU list
// holds it strongly); once neither holds, it dies, its entry vanishes, and
// the next get() loads it again.
#include <cstddef>
#include <functional>
#include <iostream>
#include <list>
#include <string>
#include <utility>
#include <weakref/weakref.hpp>

using weakref::Strong;

template <class K, class V>
class SmartCache {
 public:
  using Loader = std::function<Strong<V>(const K&)>;

  SmartCache(std::size_t capacity, Loader loader) : capacity_(capacity), load_(std::move(loader)) {}
  SmartCache(const SmartCache&) = delete;
  SmartCache& operator=(const SmartCache&) = delete;
  ~SmartCache() {
    while (!mru_.empty()) mru_.pop_back();  // oldest first, whatever std::list would do
  }

  // The cached object, or a freshly loaded one; either way it becomes the
  // most recently used.
  Strong<V> get(const K& key) {
    Strong<V> value = cache_.get(key);  // null if never loaded or dead since
    if (value) {
      ++hits_;
    } else {
      ++misses_;
      value = load_(key);
      cache_.set(key, value);  // the dictionary alone would not keep it
    }
    touch(key, value);
    return value;
  }

  void print(std::ostream& os) const {
    os << "  cached: [";
    const char* sep = "";
    for (const K& k : cache_.keys()) os << std::exchange(sep, ", ") << k;
    os << "]  mru: [";
    sep = "";
    for (const auto& entry : mru_) os << std::exchange(sep, ", ") << entry.first;
    os << "]  hits=" << hits_ << " misses=" << misses_ << "\n";
  }

 private:
  // Moves key to the front of the MRU list; the value pushed out of the
  // window loses its strong reference here, and dies now unless a user
  // still holds it (then the weak dictionary keeps finding it).
  void touch(const K& key, const Strong<V>& value) {
    mru_.remove_if([&](const auto& entry) { return entry.first == key; });
    mru_.emplace_front(key, value);
    if (mru_.size() > capacity_) mru_.pop_back();
  }

  weakref::WeakValueDictionary<K, V> cache_;
  std::list<std::pair<K, Strong<V>>> mru_;  // newest first, at most capacity_
  std::size_t capacity_;
  Loader load_;
  std::size_t hits_ = 0, misses_ = 0;
};

struct Image {
  std::string file;
  explicit Image(std::string f) : file(std::move(f)) {}
  ~Image() { std::cout << "    (freeing " << file << ")\n"; }
};

int main() {
  std::size_t loads = 0;
  SmartCache<std::string, Image> cache(2, [&](const std::string& file) {
    std::cout << "    (loading " << file << ", load #" << ++loads << ")\n";
    return weakref::make<Image>(file);
  });
  auto step = [&](const char* what) { std::cout << what << "\n"; };

  step("get a.png, b.png (the caller keeps them) and c.png (the caller does not):");
  Strong<Image> a = cache.get("a.png");
  Strong<Image> b = cache.get("b.png");
  cache.get("c.png");
  cache.print(std::cout);  // a.png is out of the window, but its user keeps it cached

  step("get a.png again (out of the window, but alive: the weak dictionary finds it):");
  cache.get("a.png");
  cache.print(std::cout);  // b.png is out of the window now, still held by the caller

  step("the caller drops b.png (out of the window: it dies, its entry vanishes):");
  b.reset();
  cache.print(std::cout);

  step("the caller drops a.png (in the window: it stays):");
  a.reset();
  cache.print(std::cout);

  step("get a.png (no user holds it, the MRU list does: a hit):");
  cache.get("a.png");
  cache.print(std::cout);

  step("get d.png (c.png falls out of the window, and no one else holds it):");
  cache.get("d.png");
  cache.print(std::cout);

  step("get c.png again (reloaded; a.png falls out and goes):");
  cache.get("c.png");
  cache.print(std::cout);

  std::cout << "loader called " << loads << " times for 4 distinct images\n";
  step("the cache goes, with the MRU window's last references:");
}
