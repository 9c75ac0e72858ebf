// weakref::WeakValueDictionary<K, V>: Python's weakref.WeakValueDictionary,
// a mapping whose values are objects held weakly.
//
//     weakref::WeakValueDictionary<std::string, Image> cache;
//     cache["logo"] = img;                // Python: cache["logo"] = img
//     if (weakref::Strong<Image> i = cache.get("logo")) ...  // null if gone
//     cache.at("logo");                   // throws weakref::KeyError if gone
//     for (auto& [name, image] : cache) ...   // image is kept alive
//
// Keys are ordinary values (hashed with Hash, compared with KeyEqual, as
// std::unordered_map; they must be nothrow-movable). Values are V objects
// made by weakref::make.
//
// Lifetime rules
//  * Each entry holds exactly one weakref object to its value (counted by
//    getweakrefcount, listed by getweakrefs and valuerefs()). Setting a key
//    again replaces that weakref with a new one (Python's KeyedRef).
//  * An entry disappears as soon as its value dies (size, lookups and
//    iteration no longer see it); its key is destroyed by the dictionary's
//    next non-const call (or prune()), on the thread making that call.
//  * Iteration (insertion order) yields the live entries, the value held
//    strongly by the iterator while the entry is current. Deaths during an
//    iteration -- caused by the loop body or by other threads, and
//    collections run from callbacks -- never invalidate it and are never
//    yielded. An iteration sees the entries there when it began, each at
//    most once: entries added during it are not yielded (setting an existing
//    key keeps its entry in its place), so it always ends. Python raises
//    RuntimeError instead. Keys yielded
//    by an iteration stay valid until it ends (the key of an entry removed
//    meanwhile is destroyed when the last iteration ends, as Python commits
//    pending removals). Iterators stay valid whatever happens to the
//    dictionary, except its destruction: it must outlive its iterators (as a
//    std container).
//  * size() counts an entry until its weakref callback has run: within the
//    dying value's callback sequence, callbacks registered after the entry
//    was set run first (newest first) and still count it, though get() is
//    null and iteration skips it -- CPython's len() does the same. Once the
//    release that killed the value returns, the entry is gone.
//  * Hash, KeyEqual and K's move constructor must not use the dictionary
//    (as for std containers). Callbacks and destructors may use it freely.
//
// Threads
//  * Values may die on any thread at any time. A death never races with the
//    dictionary: its callback only marks the entry and pushes its weakref
//    onto a lock-free queue (shared through a refcounted control block, so a
//    dictionary destroyed meanwhile is safe); the dictionary applies queued
//    removals at its next non-const operation, whose fast path is one
//    relaxed load.
//  * The dictionary is not internally synchronized. Non-const member
//    functions must not run concurrently with any other use of the same
//    dictionary. Const member functions (get, at, contains, size, find and
//    iteration of a const dictionary, copy, valuerefs, ==, operator<<) never
//    modify it and may run concurrently with each other on any number of
//    threads.
//
// Names: Python's (`d[k] = v` is set, `del d[k]` is del), plus std's erase
// (no exception, returns the count). operator[] gives Python's spelling:
// `d[k] = v` sets, and reading d[k] gives the value k had when d[k] was
// evaluated, as Python's `v = d[k]` binds it (weakref::KeyError when missing
// or dead: a weakly held value cannot be default-inserted as std::map would;
// mapped_reference below). Range-for yields (key, value) pairs, as
// std::unordered_map; keys() gives Python's `for k in d`. What the three
// weak containers share (construction, copies and moves, contains, count,
// erase, del, popitem, update, views, size, clear, prune, find,
// erase(iterator), erase_if, |, |=, the collector's view) is in
// detail/weak_container.hpp, their common core.
// docs/python-mapping.md lists every difference from Python
// (python-mapping.md#weak-container-differences);
// docs/threads.md states the thread rules in full.
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/weak_container.hpp"
#include "gc.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

/// Python's weakref.WeakValueDictionary: a mapping whose values (objects
/// made by make<V>()) are held weakly; an entry disappears when its value
/// dies. Keys are ordinary values (Hash, KeyEqual as std::unordered_map).
///
/// Besides the members below, it has those it shares with the other weak
/// containers, defined once in their core (detail/weak_container.hpp): its
/// constructors (`{{k, v}, ...}`, a range of pairs, `(first, last)`), copies
/// (new weakrefs) and moves, `swap`, `size`, `empty`, `clear`, `prune`,
/// `copy`, `contains`, `count`, `erase` (of a key or an iterator), `del`,
/// `popitem`, `update`, `keys`/`values`/`items`, `begin`/`end`, `find`,
/// `erase_if`, `|`, `|=` and `trace`. The header comment states the
/// lifetime and thread rules; in short, non-const members must not run
/// concurrently with any other use of the dictionary, const ones may run
/// concurrently with each other, and values may die on any thread at any
/// time.
/// @tparam K        the keys' type (nothrow-move-constructible).
/// @tparam V        the values' class type (weakly referenceable).
/// @tparam Hash     the keys' hash (user code: it runs during lookups).
/// @tparam KeyEqual the keys' equality.
template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class WeakValueDictionary
    : public detail::WeakContainer<detail::WeakValuePolicy<K, V, Hash, KeyEqual>,
                                   WeakValueDictionary<K, V, Hash, KeyEqual>> {
  static_assert(detail::weakly_referenceable<V>,
                "weakref::WeakValueDictionary<K, V>: V cannot be weakly referenced (see "
                "weakref::ref<T>)");
  static_assert(std::is_nothrow_move_constructible_v<K>,
                "weakref::WeakValueDictionary<K, V>: K must be nothrow-move-constructible");
  using Policy = detail::WeakValuePolicy<K, V, Hash, KeyEqual>;
  using Base = detail::WeakContainer<Policy, WeakValueDictionary<K, V, Hash, KeyEqual>>;

 public:
  using key_type = K;             ///< a key
  using mapped_type = Strong<V>;  ///< a value, as the lookups give it
  using hasher = Hash;            ///< the keys' hash
  using key_equal = KeyEqual;     ///< the keys' equality

  // WeakValueDictionary(), {{k, v}, ...}, (range of pairs), (first, last),
  // copies (weakrefs of their own) and moves: detail::WeakContainer.
  using Base::Base;

  /// What d[k] gives: `d[k] = v` is set(k, v), and reading it (a
  /// conversion to `Strong<V>`, `->`, `==`) is Python's `d[k]`: the value k
  /// had when `d[k]` was evaluated (get(k), held here), or weakref::KeyError
  /// (k's repr) when k was missing or its value dead. So `auto v = d[k];`
  /// binds the value as Python's `v = d[k]` does: it keeps it alive and
  /// still gives it after `d[k] = other`, or once the dictionary is gone.
  /// One difference: the KeyError comes when v is read, not at `d[k]`
  /// (which must not throw, to be assigned). Assigning to a named one sets
  /// d[k] again (the dictionary must still exist) and gives the new value.
  /// Cost: every `d[k]` looks k up, `d[k] = v` too; set(k, v) does not.
  class mapped_reference {
   public:
    /// `d[k] = v`: set(k, v).
    ///@{
    void operator=(const Strong<V>& value) & {
      d_->set(key_, value);
      value_ = value;
    }
    void operator=(const Strong<V>& value) && { d_->set(std::move(key_), value); }
    ///@}
    /// `d[k] = d[j]`: set(k, d[j]'s value).
    ///@{
    void operator=(const mapped_reference& o) & { *this = o.value(); }
    void operator=(const mapped_reference& o) && { std::move(*this) = o.value(); }
    ///@}
    /// Copies refer to the same dictionary and key, and hold the same value.
    mapped_reference(const mapped_reference&) = default;
    /// Does nothing to the dictionary.
    ~mapped_reference() = default;

    /// Reads `d[k]`: the value; throws weakref::KeyError when k was missing
    /// or dead.
    operator Strong<V>() const { return value(); }
    /// `d[k]->member`: the value's member; weakref::KeyError as above.
    const Strong<V>& operator->() const { return value(); }
    /// `d[k] == v`: the value is v (identity); weakref::KeyError as above.
    friend bool operator==(const mapped_reference& a, const Strong<V>& b) { return a.value() == b; }

   private:
    friend class WeakValueDictionary;
    mapped_reference(WeakValueDictionary* d, K key)
        : d_(d), key_(std::move(key)), value_(d->get(key_)) {}
    const Strong<V>& value() const {
      if (!value_) detail::key_error(key_);
      return value_;
    }
    WeakValueDictionary* d_;
    K key_;
    Strong<V> value_;  // what get(key_) gave, null when missing or dead
  };

  // -- Mapping ------------------------------------------------------------------

  /// Python's `d[k] = v`. Throws std::invalid_argument for a null value,
  /// std::bad_alloc, and what copying K, Hash or KeyEqual throws.
  ///@{
  void set(const K& key, const Strong<V>& value) { this->put_value(key, value); }
  void set(K&& key, const Strong<V>& value) { this->put_value(std::move(key), value); }
  ///@}

  /// Python's `d[k]`, both ways: see mapped_reference.
  ///@{
  mapped_reference operator[](const K& key) { return mapped_reference(this, key); }
  mapped_reference operator[](K&& key) { return mapped_reference(this, std::move(key)); }
  ///@}
  /// Python's `d[k]` on a const dictionary: at(k).
  Strong<V> operator[](const K& key) const { return at(key); }

  /// Python's `d.get(k[, default])`: the value, or null (`def`) when missing
  /// or dead.
  ///@{
  Strong<V> get(const K& key) const {
    const auto* e = Policy::find_entry(this->table_, Hash{}(key), key);
    return e ? detail::entry_lock<V>(e->w, e->side) : Strong<V>();
  }
  Strong<V> get(const K& key, Strong<V> def) const {
    if (Strong<V> v = get(key)) return v;
    return def;
  }
  ///@}
  /// Python's `d[k]`: the value; throws weakref::KeyError (k's repr) when
  /// missing or dead.
  Strong<V> at(const K& key) const {
    if (Strong<V> v = get(key)) return v;
    detail::key_error(key);
  }

  /// Python's `d.pop(k[, default])`: the value, removed; throws
  /// weakref::KeyError when missing (or dead) and no default.
  ///@{
  Strong<V> pop(const K& key) {
    if (Strong<V> v = take(key)) return v;
    detail::key_error(key);
  }
  Strong<V> pop(const K& key, Strong<V> def) {
    if (Strong<V> v = take(key)) return v;
    return def;
  }
  ///@}

  /// Python's `d.setdefault(k, v)`: the live value of k, or v after setting
  /// it. Throws as set().
  Strong<V> setdefault(const K& key, const Strong<V>& value) {
    if (Strong<V> v = get(key)) return v;
    set(key, value);
    return value;
  }

  /// Python's `d.valuerefs()`: the weakrefs of the live entries, in
  /// insertion order (a value may die right after). They live on after their
  /// entries.
  std::vector<ref<V>> valuerefs() const { return this->entry_refs(); }

  /// Python's `==`: the same live keys, mapped to the same objects.
  friend bool operator==(const WeakValueDictionary& a, const WeakValueDictionary& b) {
    if (&a == &b) return true;
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a)
      if (b.get(k) != v) return false;
    return true;
  }

  /// Python's repr: `<WeakValueDictionary at 0x...>`.
  friend std::ostream& operator<<(std::ostream& os, const WeakValueDictionary& d) {
    return detail::write_container_address(os, "WeakValueDictionary", &d);
  }

 private:
  Strong<V> take(const K& key) {
    Strong<V> v;
    if (this->template remove_live<true>(key, v) == Base::npos) return {};
    this->table_.maintain();
    return v;
  }
};

/// The collector's view of a WeakValueDictionary: its entries' weakrefs (a
/// dictionary held by a traced object is traced with it; clearing empties
/// it).
template <class K, class V, class H, class E>
struct gc::trace_traits<WeakValueDictionary<K, V, H, E>> {
  /// Visits d (WeakContainer::trace).
  static void trace(WeakValueDictionary<K, V, H, E>& d, Visitor& v) { d.trace(v); }
};

}  // namespace weakref
