// A game-object registry that tracks every live object without owning any.
// The scene owns the objects (Strong); the registry finds them by id
// (WeakValueDictionary) and by tag (WeakSet), hears of each death through a
// weakref callback that updates its statistics, and a finalizer gives each
// dead object's preallocated slot back to a pool. Removing an object from
// the scene is all it takes: nothing else holds it, so it dies at once and
// every index forgets it.
#include <algorithm>
#include <cstddef>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>
#include <weakref/weakref.hpp>

using weakref::Strong;

struct Vec2 {
  int x = 0, y = 0;
};

// Preallocated per-object state (a physics body, a GPU buffer slice): a
// fixed array and a free list. Objects borrow a slot when they spawn and
// give it back through a finalizer when they die.
class SlotPool {
 public:
  explicit SlotPool(std::size_t n) : slots_(n) {
    for (std::size_t i = n; i-- > 0;) free_.push_back(i);  // slot 0 is handed out first
  }
  std::size_t acquire() {
    if (free_.empty()) throw std::length_error("slot pool exhausted");
    const std::size_t i = free_.back();
    free_.pop_back();
    slots_[i] = {};
    return i;
  }
  void release(std::size_t i) {
    free_.push_back(i);
    std::cout << "    pool: slot " << i << " free again\n";
  }
  Vec2& operator[](std::size_t i) { return slots_[i]; }
  std::size_t available() const { return free_.size(); }

 private:
  std::vector<Vec2> slots_;
  std::vector<std::size_t> free_;
};

struct GameObject {
  int id;
  std::string tag;
  long born;  // the tick it spawned at
  std::size_t slot;
  GameObject(int i, std::string t, long b, std::size_t s)
      : id(i), tag(std::move(t)), born(b), slot(s) {}
};

class Registry {
 public:
  explicit Registry(SlotPool& pool) : pool_(pool) {}
  long now() const { return tick_; }
  void advance() { std::cout << "tick " << ++tick_ << "\n"; }

  Strong<GameObject> spawn(const std::string& tag, Vec2 at) {
    auto obj = weakref::make<GameObject>(next_id_++, tag, tick_, pool_.acquire());
    pool_[obj->slot] = at;
    by_id_.set(obj->id, obj);
    by_tag_[tag].add(obj);
    // The slot goes back to the pool when obj dies. Live finalizers are
    // kept by the library, so this handle may go; its arguments are the
    // pool and the slot number, never obj (that would keep obj alive).
    weakref::finalize return_slot(obj, &SlotPool::release, &pool_, obj->slot);
    return_slot.atexit(false);  // at exit the pool may be gone: never run then
    // The death notification. A callback runs only while its weakref object
    // exists, so the registry keeps the ref until the callback drops it.
    auto notify = [this, id = obj->id, tag, born = tick_] { record_death(id, tag, born); };
    deaths_.emplace(obj->id, weakref::ref<GameObject>(obj, notify));
    ++created_;
    ++by_tag_count_[tag].created;
    peak_ = std::max(peak_, alive());
    std::cout << "  spawn " << tag << " #" << obj->id << " at (" << at.x << "," << at.y
              << ") in slot " << obj->slot << "\n";
    return obj;
  }

  Strong<GameObject> find(int id) const { return by_id_.get(id); }  // null once dead
  // Iterating a WeakSet yields the live objects only (insertion order).
  std::vector<Strong<GameObject>> with_tag(const std::string& tag) const {
    std::vector<Strong<GameObject>> out;
    if (auto it = by_tag_.find(tag); it != by_tag_.end())
      for (const Strong<GameObject>& o : it->second) out.push_back(o);
    return out;
  }
  std::size_t alive() const { return by_id_.size(); }  // live entries only

  void report() const {
    std::cout << "stats: created " << created_ << ", alive " << alive() << ", died " << died_
              << ", peak alive " << peak_ << ", free slots " << pool_.available() << "\n";
    for (const auto& [tag, c] : by_tag_count_)
      std::cout << "  " << tag << ": created " << c.created << ", died " << c.died << ", alive "
                << by_tag_.at(tag).size() << "\n";
  }

 private:
  // Runs inside the death, before ~GameObject: the object is unreachable
  // (find() and with_tag() no longer see it), so the callback gets what it
  // needs from its captures. by_id_.size() may still count the dying object
  // here: callbacks run newest first, and the dictionary's own, made before
  // ours, runs after it (as in CPython). The counters are exact.
  void record_death(int id, const std::string& tag, long born) {
    ++died_;
    ++by_tag_count_[tag].died;
    std::cout << "    registry: " << tag << " #" << id << " died, age " << tick_ - born << ", "
              << created_ - died_ << " alive\n";
    deaths_.erase(id);  // the dead weakref is of no more use (the caller holds it meanwhile)
  }

  struct Count {
    int created = 0, died = 0;
  };
  SlotPool& pool_;
  long tick_ = 0;
  int next_id_ = 1;
  weakref::WeakValueDictionary<int, GameObject> by_id_;
  std::map<std::string, weakref::WeakSet<GameObject>> by_tag_;
  std::map<int, weakref::ref<GameObject>> deaths_;
  std::map<std::string, Count> by_tag_count_;
  int created_ = 0, died_ = 0;
  std::size_t peak_ = 0;
};

std::string ids(const std::vector<Strong<GameObject>>& objs) {
  std::string s;
  for (const auto& o : objs) s += " #" + std::to_string(o->id);
  return s.empty() ? " none" : s;
}

int main() {
  SlotPool pool(6);  // declared first: it outlives every object and finalizer
  Registry registry(pool);
  std::vector<Strong<GameObject>> scene;  // the only owner of the objects
  auto remove = [&](const Strong<GameObject>& o) { std::erase(scene, o); };

  std::cout << "tick 0\n";
  Strong<GameObject> player = registry.spawn("player", {0, 0});
  scene.push_back(player);
  for (int x : {0, 4, 6}) scene.push_back(registry.spawn("enemy", {x, 2}));

  // The player fires at these x positions on ticks 1, 2 and 3; bullets fly
  // up one row a tick, hit an enemy on the same cell, and leave past row 2.
  const std::map<long, int> fire_at{{1, 0}, {2, 2}, {3, 4}};
  while (registry.now() < 5) {
    registry.advance();
    // with_tag() returns Strong handles: an object removed from the scene
    // during a loop dies when the loop's list goes, not in the middle.
    for (const Strong<GameObject>& bullet : registry.with_tag("bullet")) {
      Vec2& p = pool[bullet->slot];
      if (++p.y > 2) {
        std::cout << "  bullet #" << bullet->id << " left the screen\n";
        remove(bullet);
        continue;
      }
      std::cout << "  bullet #" << bullet->id << " moves to (" << p.x << "," << p.y << ")\n";
      for (const Strong<GameObject>& enemy : registry.with_tag("enemy")) {
        const Vec2& e = pool[enemy->slot];
        if (e.x != p.x || e.y != p.y) continue;
        std::cout << "  bullet #" << bullet->id << " hits enemy #" << enemy->id << "\n";
        remove(enemy), remove(bullet);
      }
    }
    if (auto f = fire_at.find(registry.now()); f != fire_at.end())
      scene.push_back(registry.spawn("bullet", {f->second, 0}));
    if (registry.now() == 5) scene.push_back(registry.spawn("enemy", {2, 2}));  // a new wave
  }

  std::cout << "\nqueries: enemies alive:" << ids(registry.with_tag("enemy"))
            << "; find(2): " << (registry.find(2) ? "alive" : "gone")
            << "; find(4): " << (registry.find(4) ? "alive" : "gone") << "\n";
  registry.report();

  std::cout << "\nlevel over: scene.clear()\n";
  scene.clear();  // the player lives on: `player` still holds it
  std::cout << "alive: " << registry.alive() << "; player.reset()\n";
  player.reset();
  registry.report();
}
