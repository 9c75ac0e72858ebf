// weakref::ConcurrentWeakValueDictionary<K, V>: a WeakValueDictionary that
// threads share without a lock of their own -- a weak value cache for a
// server or a job system.
//
//     weakref::ConcurrentWeakValueDictionary<std::string, Image> cache;   // shared
//     if (weakref::Strong<Image> img = cache.get(name)) return img;        // any thread
//     return cache.setdefault(name, weakref::make<Image>(load(name)));     // any thread
//
// Design: the table is split into shards (a power of two, 64 by default),
// each a std::unordered_map with its own std::shared_mutex; a key's hash
// picks its shard. Writers (set, erase, setdefault, pop, clear, prune) lock
// one shard exclusively. get() and contains() take no lock at all in the
// common case: a reader announces itself in a slot of its own (a cache line
// that only its thread writes: detail/reader_slots.hpp) and checks that no
// writer is at work on the shard; a writer, once it holds the shard's
// mutex, raises the shard's `writing` flag and waits for the readers
// announced for that shard. So readers write no line that another reader
// writes (with a shared lock, every lookup would write the lock's word,
// whose line then moves between the cores), and a reader that meets a
// writer waits for it on the shard's shared lock. size(), keys() and
// items() take the shards' locks shared. The entries are the weak
// containers' own (detail/entry_weak.hpp): each holds one weakref object
// to its value, linked into the value's weakref list (getweakrefcount
// counts it), with a per-shard control block.
//
// Lifetime rules
//  * An entry disappears as soon as its value dies, on whatever thread, or
//    is collected: get(), contains() and size() no longer see it. The
//    value's death only marks the entry and pushes its weakref onto its
//    shard's lock-free queue (no lock, no allocation, no user code); the
//    key and the weakref are destroyed by the next write to that shard (or
//    prune(), clear(), the destructor), on the thread making it.
//  * set(k, v) replaces the entry of k with a new weakref (as Python's
//    d[k] = v). Values are objects made by weakref::make<V>() (or a base
//    V of one); a null value is std::invalid_argument.
//  * Keys are values: K copyable (set copies it in), Hash and KeyEqual as
//    std::unordered_map's. Hash, KeyEqual and K's destructor run under a
//    shard's lock and must not use the dictionary.
//  * No iteration: items() and keys() give snapshots, shard by shard (a
//    concurrent writer's change may be seen in one shard and not another).
//  * The dictionary is not copyable or movable, and must outlive its use
//    by every thread (as a std::mutex); values' deaths after it is gone are
//    safe.
//  * Not traced by the collector: a Strong inside a key is a root.
//
// Threads
//  * Every member function may be called from any thread, concurrently
//    with any other (but the destructor).
//  * A returned Strong<V> is taken while the shard is read (the value
//    cannot die in between) and released by its holder, outside any lock.
//  * Differences from WeakValueDictionary (docs/python-mapping.md): no
//    iteration, no d[k] proxy, pop() returns null rather than raising for a
//    missing key (pop(k) with a default is the same), and the order of
//    keys() is unspecified.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/entry_weak.hpp"
#include "detail/key_repr.hpp"
#include "detail/reader_slots.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

/// A thread-safe weakref::WeakValueDictionary: a mapping from keys to
/// weakly held values (objects made by make<V>()) that any number of
/// threads use at once; get() takes no exclusive lock. The header comment
/// states the design, lifetime and thread rules.
template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class ConcurrentWeakValueDictionary {
  static_assert(detail::weakly_referenceable<V>,
                "weakref::ConcurrentWeakValueDictionary<K, V>: V cannot be weakly referenced "
                "(see weakref::ref<T>)");
  static_assert(std::is_copy_constructible_v<K>,
                "weakref::ConcurrentWeakValueDictionary<K, V>: K must be copyable");

 public:
  using key_type = K;             ///< The key type.
  using mapped_type = Strong<V>;  ///< What get() returns: a strong reference (null if none).
  using hasher = Hash;            ///< The keys' hash.
  using key_equal = KeyEqual;     ///< The keys' equality.

  /// An empty dictionary of `shards` shards (rounded up to a power of two;
  /// more shards: fewer threads meet on one lock).
  explicit ConcurrentWeakValueDictionary(std::size_t shards = 64)
      : bits_(static_cast<unsigned>(std::countr_zero(std::bit_ceil(shards ? shards : 1)))),
        shards_(new Shard[std::size_t{1} << bits_]) {}
  ConcurrentWeakValueDictionary(const ConcurrentWeakValueDictionary&) = delete;
  ConcurrentWeakValueDictionary& operator=(const ConcurrentWeakValueDictionary&) = delete;
  ~ConcurrentWeakValueDictionary() = default;

  /// Python's get(k): the live value of k, or null (missing or dead).
  /// Takes no lock unless a writer is at work on k's shard (then waits for it).
  Strong<V> get(const K& key) const {
    const Shard& s = shard(Hash{}(key));
    return read(s, [&]() -> Strong<V> {
      auto it = s.map.find(key);
      if (it == s.map.end()) return {};
      return detail::entry_lock<V>(it->second.word, it->second.side);
    });
  }
  /// Python's get(k, default).
  Strong<V> get(const K& key, Strong<V> def) const {
    if (Strong<V> v = get(key)) return v;
    return def;
  }
  /// Python's d[k]: weakref::KeyError when k is missing or its value dead.
  Strong<V> at(const K& key) const {
    if (Strong<V> v = get(key)) return v;
    detail::key_error(key);
  }
  /// Python's `k in d`: k has a live value.
  bool contains(const K& key) const {
    const Shard& s = shard(Hash{}(key));
    return read(s, [&] {
      auto it = s.map.find(key);
      return it != s.map.end() && detail::entry_alive(it->second.word, it->second.side);
    });
  }

  /// Python's d[k] = v: k now maps (weakly) to value, replacing its entry.
  /// std::invalid_argument for a null value.
  void set(const K& key, const Strong<V>& value) {
    Shard& s = shard(Hash{}(key));
    detail::ObjectHeader* h = detail::StrongAccess::header(value);
    if (!h) detail::throw_null_referent();
    WriteLock lock(*this, s);
    s.drain();
    auto it = s.map.find(key);
    // The same live value again: its weakref renewed (entry_renew).
    if (it != s.map.end() && detail::entry_renew(it->second.word, it->second.side, h,
                                                 detail::subobject_offset(value.get(), h)))
      return;
    s.put(key, attach(s, value));
  }
  /// Python's setdefault(k, v): the live value of k if it has one, else v
  /// after setting it. Atomic: of threads racing to set one key, all get
  /// the value of the first.
  Strong<V> setdefault(const K& key, const Strong<V>& value) {
    if (Strong<V> v = get(key)) return v;
    Shard& s = shard(Hash{}(key));
    detail::EntryWeak* w = attach(s, value);
    WriteLock lock(*this, s);
    s.drain();
    auto it = s.map.find(key);
    if (it != s.map.end())
      if (Strong<V> v = detail::entry_lock<V>(it->second.word, it->second.side)) {
        s.discard(w);
        return v;
      }
    s.put(key, w);
    return value;
  }
  /// Removes k; the number of entries removed (0 or 1; a dead entry counts
  /// 0, as it was already gone).
  std::size_t erase(const K& key) {
    Shard& s = shard(Hash{}(key));
    WriteLock lock(*this, s);
    s.drain();
    auto it = s.map.find(key);
    if (it == s.map.end()) return 0;
    const bool live = detail::entry_alive(it->second.word, it->second.side);
    s.remove(it);
    return live ? 1 : 0;
  }
  /// Python's pop(k, None): the live value of k, removed; null when missing
  /// or dead.
  Strong<V> pop(const K& key) {
    Shard& s = shard(Hash{}(key));
    WriteLock lock(*this, s);
    s.drain();
    auto it = s.map.find(key);
    if (it == s.map.end()) return {};
    Strong<V> v = detail::entry_lock<V>(it->second.word, it->second.side);
    s.remove(it);
    return v;  // released by the caller, outside the lock
  }

  /// The number of live entries (a snapshot, shard by shard).
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (std::size_t i = 0; i < shard_count(); ++i) {
      std::shared_lock<std::shared_mutex> lock(shards_[i].m);
      n += shards_[i].live();
    }
    return n;
  }
  /// Whether size() is 0 (a snapshot, as size(): other threads may change it).
  bool empty() const noexcept { return size() == 0; }
  /// Removes every entry.
  void clear() {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      Shard& s = shards_[i];
      WriteLock lock(*this, s);
      s.drain();
      while (!s.map.empty()) s.remove(s.map.begin());
    }
  }
  /// Destroys the keys and weakrefs of the entries whose values died
  /// (otherwise done by the next write to their shard).
  void prune() {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      Shard& s = shards_[i];
      WriteLock lock(*this, s);
      s.drain();
    }
  }

  /// The live keys (a snapshot; order unspecified).
  std::vector<K> keys() const {
    std::vector<K> out;
    for_each_live([&](const K& k, const auto&) { out.push_back(k); });
    return out;
  }
  /// The live entries, values held strongly (a snapshot; order unspecified).
  std::vector<std::pair<K, Strong<V>>> items() const {
    std::vector<std::pair<K, Strong<V>>> out;
    for_each_live([&](const K& k, const auto& slot) {
      if (Strong<V> v = detail::entry_lock<V>(slot.word, slot.side))
        out.emplace_back(k, std::move(v));
    });
    return out;
  }
  /// The number of shards.
  std::size_t shard_count() const noexcept { return std::size_t{1} << bits_; }

 private:
  struct Slot {
    detail::EntryWord word;   // the entry's weakref (EntryWeak) and offset bit
    detail::SideTable* side;  // its referent's side table
  };
  using Map = std::unordered_map<K, Slot, Hash, KeyEqual>;

  // One shard: its map, and the weak containers' entry machinery
  // (entry_weak.hpp). The "owner" of that protocol is whoever holds `m`
  // exclusively. EntryWeak::index is the entry's place in `keys`, through
  // which a drained death finds its map entry.
  struct alignas(64) Shard {
    mutable std::shared_mutex m;       // writers, and readers on the slow path
    std::atomic<bool> writing{false};  // a writer holds m (reader_slots.hpp)
    Map map;
    std::vector<const K*> keys;       // by EntryWeak::index (node keys are stable)
    std::vector<std::uint32_t> free;  // unused indices of `keys`
    detail::ContainerControl* ctrl = detail::control_create();
    std::ptrdiff_t dead_settled = 0;  // claims of entries a writer removed,
                                      // not drained (weak_table.hpp's size())

    Shard() = default;
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;
    ~Shard() {
      // The entries first (entry_weak.hpp's protocol, as weak_table.hpp's
      // destroy): a claimed entry's reference is the death queue's, which
      // the close below releases.
      for (auto& [k, slot] : map) {
        detail::EntryWeak* w = detail::entry_weak(slot.word);
        if (!(detail::entry_mark_out(w) & detail::kEntryDead)) detail::weak_release(w);
      }
      for (detail::EntryWeak* w = detail::control_close(ctrl); w;) {
        detail::EntryWeak* next = w->queue_next();
        detail::weak_release(w);
        w = next;
      }
      detail::control_release(ctrl);
    }

    // Live entries: those in the map but the claimed ones not yet drained
    // (weak_table.hpp's size()).
    std::size_t live() const noexcept {
      return detail::entries_unclaimed(map.size(), ctrl, dead_settled);
    }

    // Applies the deaths queued by the entries' callbacks (weak_table's
    // drain): each claimed entry still in the map leaves it. Exclusive.
    void drain() noexcept {
      if (ctrl->head.load(std::memory_order_relaxed) == 0) return;
      detail::EntryWeak* w = detail::control_take(ctrl);
      while (w) {
        detail::EntryWeak* next = w->queue_next();
        // An entry a writer removed already left the map then (discard
        // counted its claim as settled).
        if (!(w->ctrl_state.fetch_or(detail::kEntryOut, std::memory_order_acq_rel) &
              detail::kEntryOut)) {
          auto it = map.find(*keys[w->index]);
          free_index(w->index);
          map.erase(it);
        } else {
          --dead_settled;
        }
        detail::weak_release(w);  // the entry's, handed to the queue by its callback
        w = next;
      }
    }

    // Takes map entry `it` out and destroys it. Exclusive.
    void remove(typename Map::iterator it) noexcept {
      detail::EntryWeak* w = detail::entry_weak(it->second.word);
      free_index(w->index);
      map.erase(it);
      discard(w);
    }

    // Drops an entry weakref the shard no longer uses (taken out, replaced,
    // or never inserted): settles the race with its callback (entry_retire)
    // and releases the entry's reference, which is the death queue's instead
    // when the callback claimed it first. Exclusive.
    void discard(detail::EntryWeak* w) noexcept {
      if (detail::entry_retire(w))
        ++dead_settled;
      else
        detail::weak_release(w);
    }

    // k -> w (w's reference moves in), replacing k's entry. Exclusive.
    void put(const K& key, detail::EntryWeak* w) {
      struct Guard {  // w is released if the insertion throws
        Shard* s;
        detail::EntryWeak* w;
        ~Guard() {
          if (w) s->discard(w);
        }
      } guard{this, w};
      auto it = map.find(key);
      if (it != map.end()) {
        detail::EntryWeak* old = detail::entry_weak(it->second.word);
        w->index = old->index;
        discard(old);
      } else {
        if (free.empty()) {
          if (keys.size() == keys.capacity()) {
            const std::size_t cap = keys.empty() ? 8 : 2 * keys.size();
            free.reserve(cap);  // first: free_index must never allocate
            keys.reserve(cap);
          }
          w->index = static_cast<std::uint32_t>(keys.size());
          keys.push_back(nullptr);
        } else {
          w->index = free.back();
          free.pop_back();
        }
        try {
          it = map.try_emplace(key).first;
        } catch (...) {
          free_index(w->index);
          throw;
        }
        keys[w->index] = &it->first;
      }
      it->second = Slot{detail::entry_word(w), w->side_table()};
      guard.w = nullptr;
    }

    void free_index(std::uint32_t i) noexcept {
      keys[i] = nullptr;
      free.push_back(i);  // capacity reserved in put()
    }
  };

  // Runs f(), a lookup in shard s, as a reader: announced in the calling
  // thread's reader slot (detail/reader_slots.hpp), or, when a writer is at
  // work on s or the slot is taken, under s's shared lock.
  template <class F>
  decltype(auto) read(const Shard& s, F&& f) const {
    if (std::atomic<std::uint32_t>* slot = readers_.enter(tag(s))) [[likely]] {
      if (!s.writing.load(std::memory_order_seq_cst)) [[likely]] {
        struct Leave {
          std::atomic<std::uint32_t>* slot;
          ~Leave() { detail::ReaderSlots::leave(slot); }
        } leave{slot};
        return f();
      }
      detail::ReaderSlots::leave(slot);
    }
    std::shared_lock<std::shared_mutex> lock(s.m);
    return f();
  }

  // A writer's hold on a shard: its mutex, then its `writing` flag and the
  // wait for the readers announced in their slots (reader_slots.hpp); the
  // flag is cleared before the mutex is released.
  class WriteLock {
   public:
    WriteLock(const ConcurrentWeakValueDictionary& d, Shard& s) : s_(s), lock_(s.m) {
      s.writing.store(true, std::memory_order_seq_cst);
      d.readers_.wait_for_readers(d.tag(s));
    }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;
    ~WriteLock() { s_.writing.store(false, std::memory_order_release); }

   private:
    Shard& s_;
    std::unique_lock<std::shared_mutex> lock_;
  };

  // A shard's number in the reader slots: its index + 1 (0 is "no read").
  std::uint32_t tag(const Shard& s) const noexcept {
    return static_cast<std::uint32_t>(&s - shards_.get()) + 1;
  }

  Shard& shard(std::size_t h) const noexcept {
    // Fibonacci hashing: the top bits of the product, so that hashes that
    // differ only in high or only in low bits still spread.
    if (bits_ == 0) return shards_[0];
    return shards_[(static_cast<std::uint64_t>(h) * 0x9E3779B97F4A7C15ULL) >> (64 - bits_)];
  }

  detail::EntryWeak* attach(Shard& s, const Strong<V>& value) {
    detail::ObjectHeader* h = detail::StrongAccess::header(value);
    if (!h) detail::throw_null_referent();
    return detail::entry_attach(h, s.ctrl, detail::subobject_offset(value.get(), h));
  }

  template <class F>
  void for_each_live(F&& f) const {
    for (std::size_t i = 0; i < shard_count(); ++i) {
      const Shard& s = shards_[i];
      std::shared_lock<std::shared_mutex> lock(s.m);
      for (const auto& [k, slot] : s.map)
        if (detail::entry_alive(slot.word, slot.side)) f(k, slot);
    }
  }

  unsigned bits_;
  std::unique_ptr<Shard[]> shards_;
  detail::ReaderSlots readers_;
};

}  // namespace weakref
