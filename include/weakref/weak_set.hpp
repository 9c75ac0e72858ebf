// weakref::WeakSet<T>: Python's weakref.WeakSet, a set of objects held weakly.
//
//     weakref::WeakSet<Node> live;
//     live.add(node);                     // one weakref to node, whatever
//     live.contains(node);                //   the number of add() calls
//     for (const weakref::Strong<Node>& n : live) ...   // n is kept alive
//     node.reset();                       // node's element is gone at once
//
// Elements are the same element when they are the same object (by_identity,
// the default). WeakSet<T, weakref::by_value<>> compares the referents with
// std::hash<T> / == instead (Python's behaviour for classes that define
// __hash__ and __eq__); the hash is computed once, at insertion.
//
// Lifetime rules
//  * Each element holds exactly one weakref object to its object (counted by
//    getweakrefcount, listed by getweakrefs); adding an element already there
//    makes no second one. The element disappears as soon as its object dies.
//  * Iteration yields the live elements (insertion order), each held
//    strongly by the iterator while it is current. Deaths during an
//    iteration -- caused by the loop body or by other threads, and
//    collections run from callbacks -- never invalidate it and are never
//    yielded. An iteration sees the elements that were there when it began,
//    each at most once: elements added during it are not yielded (an
//    element discarded and added again is a new element), so
//    `for (auto& x : s) { s.discard(x); s.add(x); }` ends. Python raises
//    RuntimeError instead. Iterators stay valid whatever happens to the set,
//    except its destruction: the set must outlive its iterators (as a std
//    container).
//  * size() counts an element until its entry's weakref callback has run:
//    within the dying object's callback sequence, callbacks registered after
//    the element was added run first (newest first) and still count it,
//    though contains() and iteration already skip it -- CPython's len() does
//    the same. Once the release that killed the object returns, it is gone.
//
// Threads
//  * Objects may die on any thread at any time. A death never races with the
//    set: its callback only marks the element and pushes its weakref onto a
//    lock-free queue (shared with the set through a refcounted control block,
//    so a set destroyed meanwhile is safe); the set applies queued removals
//    at its next non-const operation, whose fast path is one relaxed load.
//  * The set is not internally synchronized. Non-const member functions
//    must not run concurrently with any other use of the same set. Const
//    member functions (contains, size, find and iteration of a const set,
//    copy, comparisons, set algebra that returns a new set, operator<<)
//    never modify the set and may run concurrently with each other on any
//    number of threads (so a std::shared_mutex protects a set used by
//    several threads, as for std containers).
//  * The elements' objects are held only weakly; the Strong<T> handed out
//    follow Strong's thread rules.
//
// Names: Python's, except union_ (union is a C++ keyword), erase (std's
// spelling of discard that returns the count) and the operators. What all
// three weak containers share (construction, copies and moves, contains,
// count, erase, update, size, clear, prune, iteration, find,
// erase(iterator), erase_if, |, |=, the collector's view) is in
// detail/weak_container.hpp, their common core; the key policies are in
// key_policy.hpp.
// docs/python-mapping.md lists every difference from Python
// (python-mapping.md#weak-container-differences);
// docs/threads.md states the thread rules in full.
#pragma once

#include <compare>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <ostream>
#include <ranges>
#include <type_traits>
#include <utility>

#include "detail/weak_container.hpp"
#include "gc.hpp"
#include "key_policy.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

/// Python's weakref.WeakSet: a set of objects (made by make<T>()) held
/// weakly; an element disappears when its object dies. KeyPolicy is
/// by_identity or by_value<> (key_policy.hpp).
///
/// Besides the members below, a WeakSet has those it shares with the other
/// weak containers, defined once in their core (detail/weak_container.hpp):
/// its constructors (`{a, b}`, a range, `(first, last)`), copies (new
/// weakrefs) and moves, `swap`, `size`, `empty`, `clear`, `prune`, `copy`,
/// `contains`, `count`, `erase` (of an element or an iterator), `update`,
/// `begin`/`end`, `find`, `erase_if`, `|`, `|=` and `trace`. The header
/// comment states the lifetime and thread rules; in short, non-const
/// members must not run concurrently with any other use of the set, const
/// ones may run concurrently with each other, and objects may die on any
/// thread at any time.
/// @tparam T         the elements' class type (weakly referenceable).
/// @tparam KeyPolicy by_identity (the default) or by_value<>.
template <class T, class KeyPolicy = by_identity>
class WeakSet : public detail::WeakContainer<detail::WeakKeyPolicy<T, void, KeyPolicy>,
                                             WeakSet<T, KeyPolicy>> {
  static_assert(detail::weakly_referenceable<T>,
                "weakref::WeakSet<T>: T cannot be weakly referenced (see weakref::ref<T>)");
  using Base =
      detail::WeakContainer<detail::WeakKeyPolicy<T, void, KeyPolicy>, WeakSet<T, KeyPolicy>>;
  using Policy = detail::WeakKeyPolicy<T, void, KeyPolicy>;
  using Table = typename Base::Table;
  template <class R>
  static constexpr bool element_range = detail::range_of<R, Strong<T>>;
  // The default `other` of the set algebra, so that a braced list works as
  // in Python's `s |= {a, b}` or `s.issubset({a, b})` (R cannot be deduced
  // from a braced list; it then takes this default, as std::exchange's U).
  using List = std::initializer_list<Strong<T>>;

 public:
  using key_type = Strong<T>;    ///< an element
  using value_type = Strong<T>;  ///< what iteration yields
  using key_policy = KeyPolicy;  ///< by_identity or by_value<>

  // WeakSet(), WeakSet(range), WeakSet(first, last), copies (weakrefs of
  // their own) and moves: detail::WeakContainer.
  using Base::Base;
  /// Python's `WeakSet([a, b])`: `WeakSet<T> s{a, b}`, or `WeakSet s{a, b}`
  /// (deduced; g++ deduces from an initializer list only through a
  /// constructor of the class itself, not an inherited one). Throws
  /// std::invalid_argument for a null element, std::bad_alloc.
  WeakSet(std::initializer_list<Strong<T>> items) : Base(items) {}

  // -- Elements -----------------------------------------------------------------

  /// Python's `s.add(x)`: no-op when an equal element is there (no new
  /// weakref). Throws std::invalid_argument for a null Strong (Python's
  /// TypeError), std::bad_alloc.
  void add(const Strong<T>& x) { this->put_key(x); }

  /// Python's `s.discard(x)`: removes x if there (erase() says whether it
  /// was); with by_value<>, any equal value finds it.
  ///@{
  void discard(const Strong<T>& x) { this->erase(x); }
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) void discard(const U& v) { this->erase(v); }
  ///@}
  /// Python's `s.remove(x)`: throws weakref::KeyError (x's repr) when x is
  /// not there.
  ///@{
  void remove(const Strong<T>& x) {
    if (!this->erase(x)) detail::key_error(x);
  }
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) void remove(const U& v) {
    if (!this->erase(v)) detail::key_error(v);
  }
  ///@}

  /// Python's `s.pop()`: removes and returns an element (the newest live
  /// one); throws weakref::KeyError("pop from empty WeakSet") when empty.
  Strong<T> pop() {
    Strong<T> x;
    if (this->remove_newest(x) == Base::npos) detail::throw_key_error("'pop from empty WeakSet'");
    this->table_.maintain();
    return x;
  }

  // -- Set algebra (Python's methods; `other` is any range of elements) -------

  /// Python's `s.union(other)` (`union` is a C++ keyword): a new set with
  /// the elements of both. `other` is any range of Strong<T>. Throws
  /// std::bad_alloc.
  template <class R = List>
  requires element_range<R> WeakSet union_(R&& other)
  const { return *this | std::forward<R>(other); }
  /// Python's `s.intersection(other)`: a new set of the elements in both.
  template <class R = List>
  requires element_range<R> WeakSet intersection(R&& other)
  const {
    WeakSet r;
    for (auto&& x : other)
      if (this->contains(x)) r.add(x);
    return r;
  }
  /// Python's `s.difference(other)`: a new set of the elements not in other.
  template <class R = List>
  requires element_range<R> WeakSet difference(R&& other)
  const {
    WeakSet r(*this);
    r.difference_update(std::forward<R>(other));
    return r;
  }
  /// Python's `s.symmetric_difference(other)`: a new set of the elements in
  /// exactly one of the two.
  template <class R = List>
  requires element_range<R> WeakSet symmetric_difference(R&& other)
  const {
    WeakSet r(*this);
    r.symmetric_difference_update(std::forward<R>(other));
    return r;
  }

  /// Python's `s.intersection_update(other)`: keeps the elements also in
  /// other. Safe when releasing an element runs callbacks that use the set.
  template <class R = List>
  requires element_range<R>
  void intersection_update(R&& other) {
    if (is_self(other)) return;
    const WeakSet keep(other);
    Table& t = this->table_;
    t.maintain();
    // Releasing x may run a death's callbacks, which may use this set:
    // pinned, the table does not move under the loop.
    detail::IterationGuard<Table, false> pin(&t);
    for (std::uint32_t i = 0; i < t.used(); ++i) {
      if (!detail::entry_live(t.at(i).w)) continue;
      Strong<T> x = this->lock(i);
      if (x && !keep.contains(x)) t.remove(i);
    }
  }
  /// Python's `s.difference_update(other)`: removes the elements of other.
  template <class R = List>
  requires element_range<R>
  void difference_update(R&& other) {
    if (is_self(other)) return this->clear();
    for (auto&& x : other) discard(x);
  }
  /// Python's `s.symmetric_difference_update(other)`: removes the elements
  /// of other that are here and adds the others.
  template <class R = List>
  requires element_range<R>
  void symmetric_difference_update(R&& other) {
    if (is_self(other)) return this->clear();
    const WeakSet items(other);  // Python: set(other) first
    for (const Strong<T>& x : items) {
      if (!this->erase(x)) add(x);
    }
  }

  /// Python's `s.issubset(other)` (`<=`).
  template <class R = List>
  requires element_range<R>
  bool issubset(R&& other) const {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, WeakSet>) {
      return subset_of(other);
    } else {
      return subset_of(WeakSet(other));
    }
  }
  /// Python's `s.issuperset(other)` (`>=`).
  template <class R = List>
  requires element_range<R>
  bool issuperset(R&& other) const {
    for (auto&& x : other)
      if (!this->contains(x)) return false;
    return true;
  }
  /// Python's `s.isdisjoint(other)`: no element in common.
  template <class R = List>
  requires element_range<R>
  bool isdisjoint(R&& other) const {
    for (auto&& x : other)
      if (this->contains(x)) return false;
    return true;
  }

  // -- Operators (| and |= are the core's) -------------------------------------------

  /// Python's `a & b`: intersection().
  template <class R>
  requires element_range<R>
  friend WeakSet operator&(const WeakSet& a, R&& b) { return a.intersection(std::forward<R>(b)); }
  /// Python's `a - b`: difference().
  template <class R>
  requires element_range<R>
  friend WeakSet operator-(const WeakSet& a, R&& b) { return a.difference(std::forward<R>(b)); }
  /// Python's `a ^ b`: symmetric_difference().
  template <class R>
  requires element_range<R>
  friend WeakSet operator^(const WeakSet& a, R&& b) {
    return a.symmetric_difference(std::forward<R>(b));
  }
  /// Python's `a &= b`: intersection_update().
  template <class R = List>
  requires element_range<R> WeakSet& operator&=(R&& b) {
    intersection_update(std::forward<R>(b));
    return *this;
  }
  /// Python's `a -= b`: difference_update().
  template <class R = List>
  requires element_range<R> WeakSet& operator-=(R&& b) {
    difference_update(std::forward<R>(b));
    return *this;
  }
  /// Python's `a ^= b`: symmetric_difference_update().
  template <class R = List>
  requires element_range<R> WeakSet& operator^=(R&& b) {
    symmetric_difference_update(std::forward<R>(b));
    return *this;
  }

  /// Python's `==`: the same live elements.
  friend bool operator==(const WeakSet& a, const WeakSet& b) {
    return &a == &b || (a.size() == b.size() && a.subset_of(b));
  }
  /// Python's `<`, `<=`, `>`, `>=`: (proper) subset and superset, a partial
  /// order.
  friend std::partial_ordering operator<=>(const WeakSet& a, const WeakSet& b) {
    if (&a == &b) return std::partial_ordering::equivalent;
    const bool le = a.subset_of(b);
    const bool ge = b.subset_of(a);
    if (le && ge) return std::partial_ordering::equivalent;
    if (le) return std::partial_ordering::less;
    if (ge) return std::partial_ordering::greater;
    return std::partial_ordering::unordered;
  }

  /// Python's repr: `WeakSet({<Node object at 0x...>, ...})` or
  /// `WeakSet()`; elements print with their own operator<< when they have
  /// one.
  friend std::ostream& operator<<(std::ostream& os, const WeakSet& s) {
    os << "WeakSet(";
    bool first = true;
    for (const Strong<T>& x : s) {
      os << (first ? "{" : ", ");
      first = false;
      detail::write_repr(os, x);
    }
    return os << (first ? ")" : "})");
  }

 private:
  bool subset_of(const WeakSet& other) const {
    for (const Strong<T>& x : *this)
      if (!other.contains(x)) return false;
    return true;
  }

  template <class R>
  bool is_self(const R& other) const noexcept {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, WeakSet>)
      return &other == this;
    else
      return false;
  }
};

namespace detail {
template <class R>
inline constexpr bool is_weak_set = false;
template <class T, class P>
inline constexpr bool is_weak_set<WeakSet<T, P>> = true;
// A range of Strong<T> other than a WeakSet (whose copy deduction keeps
// its key policy), and the T of its elements.
template <class R>
concept strong_range = std::ranges::input_range<R> && !is_weak_set<std::remove_cvref_t<R>> &&
                       is_strong<std::ranges::range_value_t<R>>::value;
template <class R>
using strong_range_element_t = typename std::ranges::range_value_t<R>::element_type;
}  // namespace detail

/// Class template argument deduction, as Python's `WeakSet([a, b])`:
/// `WeakSet s{a, b}`, `WeakSet s(vector_of_strong)` and `WeakSet s(first,
/// last)` are `WeakSet<T>` (identity keys) for elements of type `Strong<T>`.
///@{
template <class T>
WeakSet(std::initializer_list<Strong<T>>) -> WeakSet<T>;
template <detail::strong_range R>
WeakSet(R&&) -> WeakSet<detail::strong_range_element_t<R>>;
template <std::input_iterator It, std::sentinel_for<It> S>
requires detail::is_strong<std::iter_value_t<It>>::value WeakSet(It, S)
->WeakSet<typename std::iter_value_t<It>::element_type>;
///@}

/// The collector's view of a WeakSet: its entries' weakrefs (a WeakSet held
/// by a traced object is traced with it; clearing empties it).
template <class T, class P>
struct gc::trace_traits<WeakSet<T, P>> {
  /// Visits s (WeakContainer::trace).
  static void trace(WeakSet<T, P>& s, Visitor& v) { s.trace(v); }
};

}  // namespace weakref
