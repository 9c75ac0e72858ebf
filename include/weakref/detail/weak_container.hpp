// The core of the weak containers: WeakContainer<Policy, Derived> is what
// WeakValueDictionary, WeakKeyDictionary and WeakSet share (construction,
// copy and move, the write path, lookups by key, removal, iteration and
// views, find and erase through iterators, update and operator|, the
// collector's view), over one WeakTable (weak_table.hpp) and one policy
// (weak_policy.hpp). The public headers are thin front ends that add the
// names of their own kind (set/get/at/pop, add/discard/set algebra) and
// derive from it.
//
// Copies and moves
//  * A copy has weakrefs of its own: it is built by inserting the live
//    entries of the original one by one (Python's copy()).
//  * A move exchanges the tables, except while either container is being
//    iterated: then its entries must not move, so the move copies and
//    empties the source (copying may throw bad_alloc, which terminates:
//    moves are noexcept).
//
// Iteration (WeakIterator, WeakView)
//  * An iterator pins the table while it has not reached its end
//    (IterationGuard): nothing moves, payloads of removed entries wait for
//    the last iteration to end, so what it yields stays valid until then.
//  * It saves the table's end when it begins and never goes past it: it
//    yields each entry present at its beginning at most once, skips the
//    entries removed or dead by the time it reaches them, and never yields
//    an entry added after it began (an element removed and added again is a
//    new entry at the end). Python raises RuntimeError ("changed size
//    during iteration") in these cases instead.
//  * The referent of the current entry is held strongly by the iterator.
//  * Views (keys(), values(), items()) are borrowed ranges: their iterators
//    depend on the container only, never on the view object.
//
// find() and erase(iterator) (std's idioms; no Python counterpart)
//  * find() gives an iteration's iterator begun at the key's live entry: it
//    pins the table and holds the referent (so the entry stays while it
//    does), and goes on over the entries present when find() ran.
//  * erase(pos) removes the entry at pos (its position designates it: the
//    table is pinned by pos, so no entry moves or is reused meanwhile) the
//    way erase(key) does (WeakTable::remove: the death race is settled as
//    entry_weak.hpp says), then moves on from there: `it = c.erase(it)`
//    visits every entry once. The removed payload waits, as for any removal
//    during an iteration, until the last iteration ends. An entry taken out
//    meanwhile (erase(key), clear(), popitem()) is not removed again.
//    erase_if(c, pred) is that loop.
//
// Threads: see the public headers and docs/threads.md. Const members never
// modify the table (only the atomic pin count).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "../gc.hpp"
#include "../ref.hpp"
#include "../strong.hpp"
#include "dcheck.hpp"
#include "entry_weak.hpp"
#include "key_repr.hpp"
#include "weak_object.hpp"
#include "weak_policy.hpp"
#include "weak_table.hpp"

namespace weakref::detail {

// Which part of an entry an iterator yields.
enum class Part { referent, payload, items };

// The types an iteration yields for a policy: the payload as seen (a
// WeakKeyDictionary's values are mutable through a non-const iteration, a
// WeakValueDictionary's keys never are) and the (key, value) item.
template <class Policy, bool Const, class P = typename Policy::Payload>
struct Yield {
  using T = typename Policy::Referent;
  using Payload = std::conditional_t<Const || !Policy::kWeakKey, const P, P>;
  using Item = std::conditional_t<Policy::kWeakKey, std::pair<Strong<T>, Payload&>,
                                  std::pair<const P&, Strong<T>>>;
};
template <class Policy, bool Const>
struct Yield<Policy, Const, void> {
  using Payload = void;
  struct Item {};
};

struct NoItem {};

template <class Policy, Part part, bool Const>
class WeakIterator {
  using T = typename Policy::Referent;
  using Table = WeakTable<Policy>;
  using Y = Yield<Policy, Const>;
  using Item = typename Y::Item;
  using ItemSlot = std::conditional_t<part == Part::items, std::optional<Item>, NoItem>;

 public:
  using iterator_category = std::input_iterator_tag;
  using iterator_concept = std::input_iterator_tag;
  using value_type =
      std::conditional_t<part == Part::items, Item,
                         std::conditional_t<part == Part::referent, Strong<T>,
                                            std::remove_const_t<typename Y::Payload>>>;
  using difference_type = std::ptrdiff_t;
  using reference =
      std::conditional_t<part == Part::items, Item&,
                         std::conditional_t<part == Part::referent, const Strong<T>&,
                                            std::add_lvalue_reference_t<typename Y::Payload>>>;
  using pointer = std::add_pointer_t<reference>;

  WeakIterator() noexcept = default;
  // The current item holds references: copies and assignments rebuild it.
  // (The constructors copy it in their initializers: an emplace() into the
  // empty member makes g++ 12 -O2 with -fsanitize=address warn that the
  // item it first resets may be uninitialized.)
  WeakIterator(const WeakIterator& o)
      : guard_(o.guard_), pos_(o.pos_), end_(o.end_), cur_(o.cur_), item_(o.item_) {}
  WeakIterator(WeakIterator&& o) noexcept
      : guard_(std::move(o.guard_)),
        pos_(o.pos_),
        end_(o.end_),
        cur_(std::move(o.cur_)),
        item_(std::move(o.item_)) {}
  WeakIterator& operator=(WeakIterator o) noexcept {
    guard_ = std::move(o.guard_);
    pos_ = o.pos_;
    end_ = o.end_;
    cur_ = std::move(o.cur_);
    if constexpr (part == Part::items) {
      if (o.item_)
        item_.emplace(std::move(*o.item_));  // (destroys the old item first)
      else
        item_.reset();
    }
    return *this;
  }
  ~WeakIterator() = default;
  /// An iterator converts to the const_iterator at the same entry, which
  /// pins the table and holds the referent as well.
  template <bool C = Const>
  requires C WeakIterator(const WeakIterator<Policy, part, false>& o)
  noexcept : guard_(o.guard_.table()), pos_(o.pos_), end_(o.end_), cur_(o.held()) {
    if (guard_.table()) settle();
  }

  reference operator*() const noexcept {
    if constexpr (part == Part::items)
      return *item_;
    else if constexpr (part == Part::referent)
      return cur_;
    else
      return guard_.table()->at(pos_).p.value;
  }
  pointer operator->() const noexcept { return &**this; }
  WeakIterator& operator++() {
    if constexpr (part == Part::items) item_.reset();
    cur_.reset();  // may run a death; the iteration survives it
    seek(pos_ + 1);
    return *this;
  }
  // it++ of the referents gives the element it was at (held strongly).
  struct postfix {
    Strong<T> value;
    const Strong<T>& operator*() const noexcept { return value; }
  };
  auto operator++(int) {
    if constexpr (part == Part::referent) {
      postfix p{cur_};
      ++*this;
      return p;
    } else {
      ++*this;
    }
  }
  friend bool operator==(const WeakIterator& a, const WeakIterator& b) noexcept {
    return a.guard_.table() == b.guard_.table() && (!a.guard_.table() || a.pos_ == b.pos_);
  }

 private:
  template <class, Part, bool>
  friend class WeakView;
  template <class, class>
  friend class WeakContainer;
  template <class, Part, bool>
  friend class WeakIterator;

  explicit WeakIterator(const Table* t) : guard_(t), end_(t->used()) { seek(0); }
  // find(): at live entry pos of t, whose referent cur holds; it goes on as
  // an iteration begun now would.
  WeakIterator(const Table* t, std::uint32_t pos, Strong<T>&& cur) noexcept
      : guard_(t), pos_(pos), end_(t->used()), cur_(std::move(cur)) {
    settle();
  }
  // erase(const_iterator): pins t, at no entry until seek().
  WeakIterator(const Table* t, std::uint32_t end) noexcept : guard_(t), end_(end) {}

  void seek(std::uint32_t from) noexcept {
    pos_ = guard_.table()->next_live(from, end_, cur_);
    if (pos_ == Table::npos) {
      guard_.reset();
      return;
    }
    settle();
  }
  // Builds the current item from cur_, the referent of live entry pos_.
  void settle() noexcept {
    if constexpr (part == Part::items) {
      const Table* t = guard_.table();
      if constexpr (Policy::kWeakKey)
        item_.emplace(std::move(cur_), t->at(pos_).p.value);
      else
        item_.emplace(t->at(pos_).p.value, std::move(cur_));
    }
  }
  // The referent of the current entry (null at the end).
  Strong<T> held() const noexcept {
    if constexpr (part == Part::items) {
      if (!item_) return {};
      if constexpr (Policy::kWeakKey)
        return item_->first;
      else
        return item_->second;
    } else {
      return cur_;
    }
  }

  IterationGuard<Table, Const> guard_;
  std::uint32_t pos_ = 0;
  std::uint32_t end_ = 0;  // the table's end when the iteration began
  Strong<T> cur_;
  [[no_unique_address]] mutable ItemSlot item_;
};

// A dictionary's keys(), values() or items().
template <class Policy, Part part, bool Const>
class WeakView {
 public:
  using iterator = WeakIterator<Policy, part, Const>;
  iterator begin() const { return iterator(t_); }
  iterator end() const noexcept { return iterator(); }

 private:
  template <class, class>
  friend class WeakContainer;
  explicit WeakView(const WeakTable<Policy>* t) noexcept : t_(t) {}
  const WeakTable<Policy>* t_;
};

}  // namespace weakref::detail

// A view's iterators point into the container's table, not into the view:
// they stay valid when a temporary view (`d.keys()`) is gone, so the ranges
// algorithms return them rather than std::ranges::dangling
// (`std::ranges::find(d.keys(), k) != d.keys().end()`).
/// \cond
template <class Policy, weakref::detail::Part part, bool Const>
inline constexpr bool
    std::ranges::enable_borrowed_range<weakref::detail::WeakView<Policy, part, Const>> = true;
/// \endcond

namespace weakref::detail {

/// The core of WeakValueDictionary, WeakKeyDictionary and WeakSet: its
/// public members are theirs (the reference lists them on each container's
/// page). One table of entries, each with one weakref to its referent (the
/// value of a WeakValueDictionary, the key of a WeakKeyDictionary, the
/// element of a WeakSet); an entry disappears when its referent dies.
///
/// Threads: not internally synchronized. Non-const members must not run
/// concurrently with any other use of the same container; const members
/// never modify it and may run concurrently with each other. Referents may
/// die on any thread at any time: a death only queues the entry's removal,
/// which the next non-const call applies. Iterators stay valid whatever
/// happens to the container except its destruction; an iteration yields
/// each entry present at its beginning at most once, skips the dead, and
/// never yields an entry added after it began (Python raises RuntimeError
/// instead). find() and erase(iterator) give std's idioms (`if (auto it =
/// d.find(k); it != d.end())`, `it = d.erase(it)` while iterating), which
/// Python lacks.
template <class Policy, class Derived>
class WeakContainer {
 protected:
  /// \cond INTERNAL
  using T = typename Policy::Referent;
  using Payload = typename Policy::Payload;
  using Key = typename Policy::Key;
  using Item = typename Policy::Item;
  using Table = WeakTable<Policy>;
  static constexpr bool kHasPayload = !std::is_void_v<Payload>;
  static constexpr std::uint32_t npos = Table::npos;
  static constexpr Part kKeys = Policy::kWeakKey ? Part::referent : Part::payload;
  static constexpr Part kValues = Policy::kWeakKey ? Part::payload : Part::referent;
  template <class R>
  static constexpr bool accepts = Policy::template accepts<R>;
  /// \endcond

 public:
  /// What size() returns.
  using size_type = std::size_t;
  /// The iterators' difference type.
  using difference_type = std::ptrdiff_t;
  /// An input iterator over the live entries (insertion order) that holds
  /// the current referent strongly.
  using iterator = WeakIterator<Policy, kHasPayload ? Part::items : Part::referent, false>;
  /// The same over a const container (values not modifiable).
  using const_iterator = WeakIterator<Policy, kHasPayload ? Part::items : Part::referent, true>;
  /// What iteration yields: `Strong<T>` (WeakSet) or a (key, value) pair.
  using value_type = typename iterator::value_type;

  // -- Construction -----------------------------------------------------------

  /// An empty container (allocates nothing).
  WeakContainer() noexcept = default;
  /// Python's `WeakSet([a, b])` / `WeakValueDictionary({k: v, ...})`: from
  /// elements or (key, value) pairs. Throws std::invalid_argument for a null
  /// referent, std::bad_alloc.
  WeakContainer(std::initializer_list<Item> items) { update(items); }
  /// From a range of elements (WeakSet) or of (key, value) pairs (another
  /// container, a std::map, a vector of pairs); as update(). Throws as the
  /// initializer-list constructor.
  template <class R>
  requires(
      accepts<R> &&
      !std::is_base_of_v<WeakContainer, std::remove_cvref_t<R>>) explicit WeakContainer(R&& items) {
    update(std::forward<R>(items));
  }
  /// From an iterator range of elements or pairs. Throws as the
  /// initializer-list constructor.
  template <std::input_iterator It, std::sentinel_for<It> S>
  WeakContainer(It first, S last) {
    for (; first != last; ++first) put_item(*first);
  }
  /// A copy has weakrefs of its own (Python's copy()); values are copied.
  /// Throws std::bad_alloc and what copying a key or value throws.
  WeakContainer(const WeakContainer& o) { update(o); }
  /// Takes o's entries (o becomes empty); while o is being iterated, copies
  /// them instead, so that o's iterators stay valid (a std::bad_alloc then
  /// terminates: moves are noexcept).
  WeakContainer(WeakContainer&& o) noexcept {
    if (!o.table_.iterating()) {
      table_.swap(o.table_);
    } else {  // o is being iterated: its entries must not move
      update(o);
      o.clear();
    }
  }
  /// Copy assignment: as the copy constructor (strong guarantee).
  WeakContainer& operator=(const WeakContainer& o) {
    if (this != &o) {
      WeakContainer tmp(o);
      *this = std::move(tmp);
    }
    return *this;
  }
  /// Move assignment: as the move constructor; the old entries are released
  /// once *this is consistent (their callbacks may use it).
  WeakContainer& operator=(WeakContainer&& o) noexcept {
    if (this == &o) return *this;
    if (!table_.iterating() && !o.table_.iterating()) {
      WeakContainer old(std::move(*this));  // released once *this is consistent
      table_.swap(o.table_);
    } else {  // one of them is being iterated: copy (see the move constructor)
      clear();
      update(o);
      o.clear();
    }
    return *this;
  }
  /// Drops every entry (their weakrefs go; values are destroyed). The
  /// container must outlive its iterators.
  ~WeakContainer() = default;

  /// Exchanges the contents of two containers (by moves: see the move
  /// constructor).
  void swap(Derived& o) noexcept {
    Derived tmp(std::move(o));
    o = std::move(derived());
    derived() = std::move(tmp);
  }
  /// std::swap for the container.
  friend void swap(Derived& a, Derived& b) noexcept { a.swap(b); }

  // -- Size ---------------------------------------------------------------------

  /// Python's `len(d)`: the entries whose referent's death has not been
  /// queued yet (within a dying referent's callbacks, a later-registered
  /// callback still counts its entry, as CPython's len() does).
  size_type size() const noexcept { return table_.size(); }
  /// Whether size() is 0.
  bool empty() const noexcept { return size() == 0; }
  /// Python's `d.clear()`: removes every entry.
  void clear() noexcept { table_.clear(); }
  /// Applies the removals queued by deaths now (every non-const call does it
  /// first): destroys the payloads of entries whose referent died, gives
  /// their memory back. No Python equivalent (CPython removes at once).
  void prune() noexcept { table_.maintain(); }
  /// Python's `d.copy()`: as the copy constructor.
  Derived copy() const { return Derived(derived()); }

  // -- Lookup and removal by key ------------------------------------------------

  /// Python's `k in d` / `x in s`: false for a null Strong and for a
  /// WeakValueDictionary key whose value is dead.
  bool contains(const Key& key) const {
    Strong<T> held;
    return find_live(key, held) != npos;
  }
  /// std's name: 1 if contains(key), else 0.
  size_type count(const Key& key) const { return contains(key) ? 1 : 0; }
  /// Removes the entry of key (Python's `d.pop(k, None)`, `s.discard(x)`):
  /// how many entries were removed (0 or 1).
  size_type erase(const Key& key) { return erase_live(key); }

  /// contains() by value, with by_value<> keys (Python: any equal object).
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) bool contains(const U& v) const {
    Strong<T> held;
    return find_live(v, held) != npos;
  }
  /// erase() by value, with by_value<> keys (Python: any equal object).
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) size_type erase(const U& v) {
    return erase_live(v);
  }

  /// Python's `update()`: from a range of elements (WeakSet) or of (key,
  /// value) pairs (another container, std::map, a vector of pairs). Throws
  /// std::invalid_argument for a null referent (the entries before it stay),
  /// std::bad_alloc.
  template <class R>
  requires accepts<R>
  void update(R&& items) {
    for (auto&& x : items) put_item(x);
  }
  /// update() from a braced list of elements or (key, value) pairs.
  void update(std::initializer_list<Item> items) {
    for (const Item& x : items) put_item(x);
  }

  // -- Dictionaries -------------------------------------------------------------

  /// Python's `del d[k]` (dictionaries): throws weakref::KeyError when absent
  /// (or dead).
  void del(const Key& key) requires kHasPayload {
    if (!erase(key)) key_error(key);
  }

  /// Python's `d.popitem()` (dictionaries): the newest live entry, removed;
  /// throws weakref::KeyError when empty.
  Item popitem() requires kHasPayload {
    Strong<T> r;
    const std::uint32_t i = remove_newest(r);
    if (i == npos) throw_key_error("'popitem(): dictionary is empty'");
    Item item = make_item(std::move(r), std::move(payload(i)));
    table_.maintain();
    return item;
  }

  /// Python's `d.items()` (dictionaries): a view of the live (key, value)
  /// entries, iterated as the container is (what range-for gives too). A
  /// view refers to the container.
  auto items() noexcept requires kHasPayload {
    return WeakView<Policy, Part::items, false>(&table_);
  }
  /// Python's `d.keys()` (dictionaries): a view of the live keys.
  auto keys() noexcept requires kHasPayload { return WeakView<Policy, kKeys, false>(&table_); }
  /// Python's `d.values()` (dictionaries): a view of the live values.
  auto values() noexcept requires kHasPayload { return WeakView<Policy, kValues, false>(&table_); }
  /// items() of a const dictionary (values not modifiable).
  auto items() const noexcept requires kHasPayload {
    return WeakView<Policy, Part::items, true>(&table_);
  }
  /// keys() of a const dictionary.
  auto keys() const noexcept requires kHasPayload { return WeakView<Policy, kKeys, true>(&table_); }
  /// values() of a const dictionary (not modifiable).
  auto values() const noexcept requires kHasPayload {
    return WeakView<Policy, kValues, true>(&table_);
  }

  // -- Iteration ---------------------------------------------------------------------

  /// The first live entry, in insertion order (Python's `iter(d)` gives the
  /// keys; here a dictionary yields (key, value) pairs and a set its
  /// elements). The iteration pins the table until it ends.
  iterator begin() { return iterator(&table_); }
  /// The end of an iteration.
  iterator end() noexcept { return iterator(); }
  /// begin() of a const container.
  const_iterator begin() const { return const_iterator(&table_); }
  /// end() of a const container.
  const_iterator end() const noexcept { return const_iterator(); }
  /// begin() of a const container.
  const_iterator cbegin() const { return begin(); }
  /// end() of a const container.
  const_iterator cend() const noexcept { return end(); }

  // -- Iterators to entries (std's idioms; Python has no counterpart) ----------------

  /// std's find: an iterator at the live entry of key, else end(). It is an
  /// iteration's iterator (it pins the table and holds the referent, so the
  /// entry cannot vanish under it); incrementing it goes on in insertion
  /// order over the entries present when find() was called.
  iterator find(const Key& key) {
    table_.maintain();
    return iterator_at<iterator>(key);
  }
  /// find() on a const container.
  const_iterator find(const Key& key) const { return iterator_at<const_iterator>(key); }
  /// find() by value, with by_value<> keys (Python: any equal object).
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) iterator find(const U& v) {
    table_.maintain();
    return iterator_at<iterator>(v);
  }
  /// find() by value on a const container.
  template <class U = T>
  requires(Policy::kByValue&& std::is_same_v<U, T>) const_iterator find(const U& v)
  const { return iterator_at<const_iterator>(v); }

  /// std's erase(iterator): removes the entry pos is at, as erase(key)
  /// would, and returns the iterator at the next live entry (or end()), so
  /// that `it = d.erase(it)` erases while iterating: each entry is visited
  /// once, and size() is right afterwards. pos must be a dereferenceable
  /// iterator of this container (from begin() or find()); as it holds the
  /// referent, the entry is there unless a removal by key, clear() or
  /// popitem() took it out meanwhile (then nothing is removed). The removed
  /// payload (key or value) stays valid until the last iteration ends, as
  /// for any removal during an iteration.
  iterator erase(iterator pos) {
    erase_step(pos);
    return pos;
  }
  /// erase(iterator) through a const_iterator (std's signature).
  iterator erase(const_iterator pos) {
    check_position(pos);
    iterator next(&table_, pos.end_);  // pins the table before the removal
    remove_at(pos.pos_);
    next.seek(pos.pos_ + 1);
    return next;
  }

  /// C++20's std::erase_if, found by argument-dependent lookup: removes the
  /// live entries for which pred(item) is true (item as an iteration yields
  /// it), visiting each entry present at the call once. Returns how many it
  /// removed.
  template <class Pred>
  friend size_type erase_if(Derived& c, Pred pred) {
    size_type n = 0;
    for (iterator it = c.begin(); it != c.end();) {
      if (pred(*it))
        n += c.erase_step(it);
      else
        ++it;
    }
    return n;
  }

  // -- Operators ---------------------------------------------------------------------

  /// Python's `a | b`: a copy of a, updated from b.
  template <class R>
  requires accepts<R>
  friend Derived operator|(const Derived& a, R&& b) {
    Derived r(a);
    r.update(std::forward<R>(b));
    return r;
  }
  /// Python's `__ror__` of the dictionaries: `mapping | dictionary`.
  template <class R>
  requires(kHasPayload&& accepts<R> &&
           !std::is_base_of_v<WeakContainer, std::remove_cvref_t<R>>) friend Derived
  operator|(R&& a, const Derived& b) {
    Derived r(std::forward<R>(a));
    r.update(b);
    return r;
  }
  /// Python's `a |= b`: update(b); b may be a braced list (`d |= {{k, v}}`,
  /// `s |= {x, y}`).
  template <class R = std::initializer_list<Item>>
  requires accepts<R> Derived& operator|=(R&& b) {
    update(std::forward<R>(b));
    return derived();
  }

  /// \cond INTERNAL
  // The collector's view (weakref::gc::trace_traits): the entries' weakrefs
  // and the payloads that hold references; in clearing mode the container is
  // emptied. A WeakKeyDictionary's live entries are ephemerons
  // (Visitor::ephemeron): their value keeps what it refers to only while
  // their key is alive on other grounds (src/gc/collect.cpp, "Ephemerons"); the
  // payloads of removed entries, waiting to be destroyed, are ordinary
  // references.
  void trace(gc::Visitor& v) {
    if (v.clearing()) {
      if (table_.used()) v.keep_until_done(Derived(std::move(derived())));
      return;
    }
    constexpr bool kEphemeron = Policy::kWeakKey && kHasPayload;
    SideTable* key = nullptr;  // of the live entry whose payload comes next
    table_.trace_entries(
        [&](auto& e) {
          key = e.side;
          v.weak_slot(entry_weak(e.w), &e.w, nullptr);
        },
        [&](auto& payload) {
          [[maybe_unused]] SideTable* k = std::exchange(key, nullptr);
          if constexpr (gc::detail::visitable<Payload>()) {
            if constexpr (kEphemeron) {
              if (k) return v.ephemeron(k, payload);
            }
            v(std::as_const(payload));
          }
        });
  }

 protected:
  Derived& derived() noexcept { return static_cast<Derived&>(*this); }
  const Derived& derived() const noexcept { return static_cast<const Derived&>(*this); }

  auto& payload(std::uint32_t idx) const noexcept { return table_.at(idx).p.value; }
  Strong<T> lock(std::uint32_t idx) const noexcept {
    return entry_lock<T>(table_.at(idx).w, table_.at(idx).side);
  }
  bool alive(std::uint32_t idx) const noexcept {
    return entry_alive(table_.at(idx).w, table_.at(idx).side);
  }

  // The live entry of key, or npos: key is a Strong<T> (a weakly held key),
  // a T (by_value) or a WeakValueDictionary key whose value is alive. `held`
  // keeps a by_value key's referent alive for the caller.
  template <class X>
  std::uint32_t find_live(const X& key, Strong<T>& held) const {
    if constexpr (!Policy::kWeakKey) {
      const std::uint32_t idx = Policy::find(table_, Policy::hash(key), key);
      return idx != npos && alive(idx) ? idx : npos;
    } else if constexpr (is_strong<X>::value) {
      return Policy::find(table_, key, held);
    } else {
      return Policy::find_value(table_, Policy::hash(key), key, held);
    }
  }
  // find(): an It at the live entry of key, holding its referent, else
  // end() (also when the referent dies before it is locked).
  template <class It, class X>
  It iterator_at(const X& key) const {
    Strong<T> cur;
    std::uint32_t idx;
    if constexpr (!Policy::kWeakKey) {
      idx = Policy::find(table_, Policy::hash(key), key);
    } else {
      idx = find_live(key, cur);  // (by_value: locked for the comparison)
    }
    if (idx == npos) return It();
    if (!cur) cur = lock(idx);
    if (!cur) return It();
    return It(&table_, idx, std::move(cur));
  }
  // find_live, or weakref::KeyError.
  template <class X>
  std::uint32_t require(const X& key) const {
    Strong<T> held;
    const std::uint32_t idx = find_live(key, held);
    if (idx == npos) key_error(key);
    return idx;
  }

  // -- The write path: every insertion goes through insert_key or put_value,
  // every removal through remove_live, remove_newest, remove_at (erase of an
  // iterator) or the table.

  // Python's d[k] = v (WeakKeyDictionary) and s.add(x): sets the payload of
  // key's entry, appending the entry when there is none.
  template <class... U>
  void put_key(const Strong<T>& key, U&&... value) {
    auto [idx, inserted] = emplace_key(key, std::forward<U>(value)...);
    if constexpr (sizeof...(U) > 0) {
      if (inserted) return;
      // The old value's destructor is user code: the table stays pinned.
      IterationGuard<Table, false> pin(&table_);
      ((payload(idx) = std::forward<U>(value)), ...);
    }
  }
  // key's live entry, after appending one with a payload made from `value`
  // when there was none (then `second` is true); `value` is used only then.
  template <class... U>
  std::pair<std::uint32_t, bool> emplace_key(const Strong<T>& key, U&&... value) {
    table_.maintain();
    Strong<T> held;
    const std::uint32_t idx = Policy::find(table_, key, held);
    if (idx != npos) return {idx, false};
    return {insert_key(key, std::forward<U>(value)...), true};
  }
  // Appends an entry for key (not in the table). Throws
  // std::invalid_argument for a null key.
  template <class... U>
  std::uint32_t insert_key(const Strong<T>& key, U&&... value) {
    ObjectHeader* h = header_of(key);
    const std::size_t hash = Policy::hash(key);
    return table_.insert(hash, attach(h, key), std::forward<U>(value)...);
  }
  // Python's d[k] = v (WeakValueDictionary): a new weakref to value for k,
  // in k's entry (kept in its place) or a new one.
  template <class KK>
  void put_value(KK&& key, const Strong<T>& value) {
    table_.maintain();
    ObjectHeader* h = header_of(value);
    const std::size_t hash = Policy::hash(key);
    const std::uint32_t idx = Policy::find(table_, hash, key);
    // The same live referent again: its weakref renewed (entry_renew).
    if (idx != npos) {
      const auto& e = table_.at(idx);
      if (entry_renew(e.w, e.side, h, subobject_offset(value.get(), h))) return;
    }
    EntryWeak* w = attach(h, value);
    if (idx != npos)
      table_.replace_weak(idx, w);
    else
      table_.insert(hash, w, std::forward<KK>(key));
  }
  // One element or (key, value) pair of update() and the constructors.
  template <class X>
  void put_item(const X& x) {
    if constexpr (!kHasPayload)
      put_key(x);
    else if constexpr (Policy::kWeakKey)
      put_key(std::get<0>(x), std::get<1>(x));
    else
      put_value(static_cast<const Payload&>(std::get<0>(x)), std::get<1>(x));
  }

  // Takes key's live entry out of the table; with kLock its referent is
  // locked into `out` (npos if it died meanwhile). Its payload stays alive,
  // for the caller to move from, until the next maintain().
  template <bool kLock, class X>
  std::uint32_t remove_live(const X& key, Strong<T>& out) {
    table_.maintain();
    const std::uint32_t idx = find_live(key, out);
    if (idx == npos) return npos;
    if constexpr (kLock && !Policy::kWeakKey) {
      out = lock(idx);
      if (!out) return npos;
    }
    table_.remove(idx);
    return idx;
  }
  // erase(iterator): removes the entry `it` is at (if it is still in the
  // table; the iteration pins it, so its position designates it) and moves
  // it on. Whether it removed it.
  bool erase_step(iterator& it) {
    check_position(it);
    const bool removed = remove_at(it.pos_);
    ++it;  // the referent is released once its entry is out
    return removed;
  }
  // Removes entry idx, pinned by an iterator at it, if it is still in the
  // table; its payload waits for the iterations to end.
  bool remove_at(std::uint32_t idx) noexcept {
    table_.maintain();  // (the table is pinned: no payload is destroyed)
    if (!entry_live(table_.at(idx).w)) return false;
    table_.remove(idx);
    return true;
  }
  template <class It>
  void check_position([[maybe_unused]] const It& it) const noexcept {
    WEAKREF_DCHECK(it.guard_.table() == &table_ && it.pos_ < table_.used(),
                   "erase(iterator): not a dereferenceable iterator of this container");
  }
  template <class X>
  size_type erase_live(const X& key) {
    Strong<T> held;
    if (remove_live<false>(key, held) == npos) return 0;
    table_.maintain();
    return 1;
  }
  // Takes the newest live entry out (popitem, WeakSet::pop), its referent
  // locked into `out`; npos when there is none. The payload waits as in
  // remove_live.
  std::uint32_t remove_newest(Strong<T>& out) {
    table_.maintain();
    for (std::uint32_t i = table_.used(); i-- > 0;) {
      if (!entry_live(table_.at(i).w)) continue;
      out = lock(i);
      if (!out) continue;
      table_.remove(i);
      return i;
    }
    return npos;
  }

  // Python's keyrefs()/valuerefs(): the weakrefs of the live entries, in
  // insertion order (a referent may die right after). They live on after
  // their entries.
  std::vector<ref<T>> entry_refs() const {
    std::vector<ref<T>> out;
    out.reserve(table_.used());
    table_.for_each_live([&](std::uint32_t, const auto& e) {
      EntryWeak* w = entry_weak(e.w);
      if (!weak_alive(w)) return;  // dead, its removal not applied yet
      weak_acquire(w);
      out.push_back(ref<T>::adopt_weak_object(w, entry_pointer<T>(w)));
    });
    return out;
  }

  Table table_;
  /// \endcond

 private:
  static ObjectHeader* header_of(const Strong<T>& x) {
    ObjectHeader* h = StrongAccess::header(x);
    if (!h) throw_null_referent();
    return h;
  }
  // The one place where entries get their weakref.
  EntryWeak* attach(ObjectHeader* h, const Strong<T>& x) {
    return entry_attach(h, table_.control(), subobject_offset(x.get(), h), table_.take_spare());
  }
  template <class P>
  static Item make_item(Strong<T>&& r, P&& p) {
    if constexpr (Policy::kWeakKey)
      return Item(std::move(r), std::forward<P>(p));
    else
      return Item(std::forward<P>(p), std::move(r));
  }
};

}  // namespace weakref::detail
