// weakref::WeakKeyDictionary<K, V>: Python's weakref.WeakKeyDictionary, a
// mapping whose keys are objects held weakly (data attached to objects
// without keeping them alive).
//
//     weakref::WeakKeyDictionary<Widget, Style> styles;
//     styles[button] = Style{...};        // Python: styles[button] = ...
//     styles.at(button).color = red;      // weakref::KeyError if absent
//     for (auto& [widget, style] : styles) ...   // widget is kept alive
//     button.reset();                     // its entry (and Style) is gone
//
// Keys are the same key when they are the same object (by_identity, the
// default). WeakKeyDictionary<K, V, weakref::by_value<>> hashes and compares
// the referents with std::hash<K> / == instead (Python's behaviour for keys
// that define __hash__ and __eq__); the hash is computed once, at insertion,
// so lookups stay correct after other keys die. Values are any nothrow-
// movable type, held strongly.
//
// Ephemerons: for the collector, a value keeps what it refers to only while
// its key is reachable on other grounds. A key reachable only through values
// of weak-keyed entries (its own: an event handler that captures its widget,
// or other entries', in any number of dictionaries) is found by
// gc::collect() with what those values alone hold, and freed as any cyclic
// garbage (callbacks, finalizers, resurrection); the collector empties that
// dead entry's value, which the next non-const call destroys. CPython leaks
// such a key (docs/python-mapping.md#ephemerons). This needs the
// dictionary traced (a member of a traced object, or make<>'d), the key a
// traced object, both in the collecting thread's heap; otherwise, and for
// reference counting alone, a value that refers to its key keeps it alive.
//
// Lifetime rules
//  * Each entry holds exactly one weakref object to its key (counted by
//    getweakrefcount, listed by getweakrefs and keyrefs()). Setting an
//    existing key again replaces the value and keeps the weakref.
//  * An entry disappears as soon as its key dies (size, lookups and
//    iteration no longer see it). Its value is destroyed by the dictionary's
//    next non-const call (or prune()), on the thread making that call: a
//    value's destructor never runs on the dying thread, nor inside another
//    call's work.
//  * Iteration (insertion order) yields the live entries, the key held
//    strongly by the iterator while the entry is current. Deaths during an
//    iteration -- caused by the loop body or by other threads, and
//    collections run from callbacks -- never invalidate it and are never
//    yielded. An iteration sees the entries there when it began, each at
//    most once: entries added during it are not yielded (a key deleted and
//    set again is a new entry; setting an existing key only changes its
//    value), so it always ends. Python raises RuntimeError instead. Values
//    yielded by an iteration stay valid until it ends: the value of an entry
//    removed meanwhile is destroyed when the last iteration ends (Python's
//    pending removals). Otherwise a reference to a value (at(),
//    setdefault(), operator[]) stays valid until its entry is removed or a
//    later insertion compacts the table. Iterators stay valid whatever happens to
//    the dictionary, except its destruction: it must outlive its iterators
//    (as a std container).
//  * size() counts an entry until its weakref callback has run: within the
//    dying key's callback sequence, callbacks registered after the entry was
//    set run first (newest first) and still count it, though lookups and
//    iteration skip it -- CPython's len() does the same. Once the release
//    that killed the key returns, the entry is gone.
//  * Hash, KeyEqual and V's move constructor must not use the dictionary (as
//    for std containers). Callbacks and value destructors may use it freely.
//
// Threads
//  * Keys may die on any thread at any time. A death never races with the
//    dictionary: its callback only marks the entry and pushes its weakref
//    onto a lock-free queue (shared through a refcounted control block, so a
//    dictionary destroyed meanwhile is safe); the dictionary applies queued
//    removals -- destroying the values -- at its next non-const operation,
//    on its own thread, whose fast path is one relaxed load.
//  * The dictionary is not internally synchronized. Non-const member
//    functions must not run concurrently with any other use of the same
//    dictionary. Const member functions (get, at, contains, size, find and
//    iteration of a const dictionary, copy, keyrefs, ==, operator<<) never
//    modify it and may run concurrently with each other on any number of
//    threads.
//
// Names: Python's (`d[k] = v` is set, `del d[k]` is del), plus std's erase
// (no exception, returns the count). operator[] is std::map's: `d[k] = v`
// sets, and reading a missing key inserts a value-initialized V (Python's
// `d[k]`, KeyError when missing, is at()); k must be a live, non-null key.
// get() returns a copy of the value, read-only so that changing it (a
// change that would be lost) does not compile: change values through at(),
// operator[] or an iteration. Range-for yields (key, value) pairs, as
// std::unordered_map; keys() gives Python's `for k in d`. What the three
// weak containers share (construction, copies and moves, contains, count,
// erase, del, popitem, update, views, size, clear, prune, find,
// erase(iterator), erase_if, |, |=, the collector's view) is in
// detail/weak_container.hpp, their common core; the key policies are in
// key_policy.hpp.
// docs/python-mapping.md lists every difference from Python
// (python-mapping.md#weak-container-differences, and #ephemerons);
// docs/threads.md states the thread rules in full.
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <ostream>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/weak_container.hpp"
#include "gc.hpp"
#include "key_policy.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

/// Python's weakref.WeakKeyDictionary: a mapping whose keys (objects made by
/// make<K>()) are held weakly and whose values (V, held strongly) go with
/// them. KeyPolicy is by_identity or by_value<> (key_policy.hpp).
///
/// Besides the members below, it has those it shares with the other weak
/// containers, defined once in their core (detail/weak_container.hpp): its
/// constructors (`{{k, v}, ...}`, a range of pairs, `(first, last)`), copies
/// (new weakrefs, values copied) and moves, `swap`, `size`, `empty`,
/// `clear`, `prune`, `copy`, `contains`, `count`, `erase` (of a key or an
/// iterator), `del`, `popitem`, `update`, `keys`/`values`/`items`,
/// `begin`/`end`, `find`, `erase_if`, `|`, `|=` and `trace`. The header
/// comment states the lifetime and thread rules; in short, non-const
/// members must not run concurrently with any other use of the dictionary,
/// const ones may run concurrently with each other, and keys may die on any
/// thread at any time.
/// @tparam K         the keys' class type (weakly referenceable).
/// @tparam V         the values' type (nothrow-move-constructible).
/// @tparam KeyPolicy by_identity (the default) or by_value<>.
template <class K, class V, class KeyPolicy = by_identity>
class WeakKeyDictionary : public detail::WeakContainer<detail::WeakKeyPolicy<K, V, KeyPolicy>,
                                                       WeakKeyDictionary<K, V, KeyPolicy>> {
  static_assert(detail::weakly_referenceable<K>,
                "weakref::WeakKeyDictionary<K, V>: K cannot be weakly referenced (see "
                "weakref::ref<T>)");
  static_assert(std::is_nothrow_move_constructible_v<V>,
                "weakref::WeakKeyDictionary<K, V>: V must be nothrow-move-constructible");
  using Policy = detail::WeakKeyPolicy<K, V, KeyPolicy>;
  using Base = detail::WeakContainer<Policy, WeakKeyDictionary<K, V, KeyPolicy>>;
  // What get() returns: a copy that cannot be changed by mistake.
  using Copy = std::conditional_t<std::is_class_v<V>, const V, V>;

 public:
  using key_type = Strong<K>;    ///< a key
  using mapped_type = V;         ///< a value
  using key_policy = KeyPolicy;  ///< by_identity or by_value<>

  // WeakKeyDictionary(), {{k, v}, ...}, (range of pairs), (first, last),
  // copies (weakrefs of their own, values copied) and moves:
  // detail::WeakContainer.
  using Base::Base;

  // -- Mapping ------------------------------------------------------------------

  /// Python's `d[k] = v`. Throws std::invalid_argument for a null key,
  /// std::bad_alloc, and what constructing or assigning V throws.
  template <class U = V>
  requires std::is_constructible_v<V, U&&> && std::is_assignable_v<V&, U&&>
  void set(const Strong<K>& key, U&& value) { this->put_key(key, std::forward<U>(value)); }

  /// std::map's operator[]: the value of key, inserting a value-initialized
  /// V when key is absent (`d[k] = v` sets). Throws std::invalid_argument for
  /// a null key, std::bad_alloc. Python's d[k], which raises KeyError, is
  /// at(). The reference is valid until the entry is removed.
  V& operator[](const Strong<K>& key) requires std::default_initializable<V> {
    return this->payload(this->emplace_key(key).first);
  }

  /// Python's `d.get(k[, default])`: a copy of the value, read-only (a change
  /// to a copy would be lost: change the value through at() or operator[]);
  /// empty (or `def`) when k is absent, dead or null.
  ///@{
  const std::optional<V> get(const Strong<K>& key) const requires std::copy_constructible<V> {
    Strong<K> held;
    const std::uint32_t idx = this->find_live(key, held);
    if (idx == Base::npos) return std::nullopt;
    return this->payload(idx);
  }
  Copy get(const Strong<K>& key, V def) const requires std::copy_constructible<V> {
    Strong<K> held;
    const std::uint32_t idx = this->find_live(key, held);
    if (idx == Base::npos) return def;
    return this->payload(idx);
  }
  ///@}
  /// Python's `d[k]`: the value; throws weakref::KeyError (k's repr) when
  /// absent. by_value keys may also be looked up by value (Python: any equal
  /// object). The reference is valid until the entry is removed.
  ///@{
  V& at(const Strong<K>& key) { return this->payload(this->require(key)); }
  const V& at(const Strong<K>& key) const { return this->payload(this->require(key)); }
  template <class U = K>
  requires(Policy::kByValue&& std::is_same_v<U, K>) V& at(const U& key) {
    return this->payload(this->require(key));
  }
  template <class U = K>
  requires(Policy::kByValue&& std::is_same_v<U, K>) const V& at(const U& key) const {
    return this->payload(this->require(key));
  }
  ///@}

  /// Python's `d.pop(k[, default])`: the value, removed; throws
  /// weakref::KeyError when absent and no default.
  ///@{
  V pop(const Strong<K>& key) {
    if (std::optional<V> v = take(key)) return std::move(*v);
    detail::key_error(key);
  }
  V pop(const Strong<K>& key, V def) {
    if (std::optional<V> v = take(key)) return std::move(*v);
    return def;
  }
  ///@}

  /// Python's `d.setdefault(k, v)`: the value of k, after setting it to v if
  /// k was absent. Throws as set().
  template <class U = V>
  requires std::is_constructible_v<V, U&&> V& setdefault(const Strong<K>& key, U&& value = U()) {
    return this->payload(this->emplace_key(key, std::forward<U>(value)).first);
  }

  /// Python's `d.keyrefs()`: the weakrefs of the live entries, in insertion
  /// order (a key may die right after). They live on after their entries.
  std::vector<ref<K>> keyrefs() const { return this->entry_refs(); }

  /// Python's `==`: the same live keys, mapped to equal values.
  friend bool operator==(const WeakKeyDictionary& a,
                         const WeakKeyDictionary& b) requires std::equality_comparable<V> {
    if (&a == &b) return true;
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a) {
      Strong<K> held;
      const std::uint32_t idx = b.find_live(k, held);
      if (idx == Base::npos || !(b.payload(idx) == v)) return false;
    }
    return true;
  }

  /// Python's repr: `<WeakKeyDictionary at 0x...>`.
  friend std::ostream& operator<<(std::ostream& os, const WeakKeyDictionary& d) {
    return detail::write_container_address(os, "WeakKeyDictionary", &d);
  }

 private:
  std::optional<V> take(const Strong<K>& key) {
    Strong<K> held;
    const std::uint32_t idx = this->template remove_live<false>(key, held);
    if (idx == Base::npos) return std::nullopt;
    std::optional<V> v(std::move(this->payload(idx)));  // alive until maintain()
    this->table_.maintain();
    return v;
  }
};

/// The collector's view of a WeakKeyDictionary: its entries' weakrefs and
/// the values' references (a dictionary held by a traced object is traced
/// with it; clearing empties it).
template <class K, class V, class P>
struct gc::trace_traits<WeakKeyDictionary<K, V, P>> {
  /// Visits d (WeakContainer::trace).
  static void trace(WeakKeyDictionary<K, V, P>& d, Visitor& v) { d.trace(v); }
};

}  // namespace weakref
