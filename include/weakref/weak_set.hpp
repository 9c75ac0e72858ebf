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
//    yielded; elements added during the iteration are yielded too.
//    Iterators stay valid whatever happens to the set, except its
//    destruction: the set must outlive its iterators (as a std container).
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
//    member functions (contains, size, iteration of a const set, copy,
//    comparisons, set algebra that returns a new set, operator<<) never
//    modify the set and may run concurrently with each other on any number
//    of threads (so a std::shared_mutex protects a set used by several
//    threads, as for std containers).
//  * The elements' objects are held only weakly; the Strong<T> handed out
//    follow Strong's thread rules.
//
// Names: Python's, except union_ (union is a C++ keyword), erase (std's
// spelling of discard that returns the count) and the operators.
// docs/python-mapping.md lists every difference from Python (differences 22-33);
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
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

template <class T, class KeyPolicy = by_identity>
class WeakSet {
  static_assert(detail::weakly_referenceable<T>,
                "weakref::WeakSet<T>: T cannot be weakly referenced (see weakref::ref<T>)");
  using Ops = detail::WeakKeyOps<T, KeyPolicy>;
  struct Traits {
    using Payload = void;
    static constexpr bool kStoredHash = Ops::kStoredHash;
    template <class E>
    static std::size_t entry_hash(const E& e) noexcept {
      if constexpr (Ops::kIdentity)
        return Ops::entry_hash(e);
      else
        return e.h.hash;
    }
  };
  using Table = detail::WeakTable<Traits>;

  template <class R>
  static constexpr bool element_range = detail::range_of<R, Strong<T>>;

 public:
  using key_type = Strong<T>;
  using value_type = Strong<T>;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using key_policy = KeyPolicy;

  template <bool Const>
  class basic_iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using iterator_concept = std::input_iterator_tag;
    using value_type = Strong<T>;
    using difference_type = std::ptrdiff_t;
    using reference = const Strong<T>&;
    using pointer = const Strong<T>*;

    basic_iterator() noexcept = default;

    reference operator*() const noexcept { return cur_; }
    pointer operator->() const noexcept { return &cur_; }
    basic_iterator& operator++() {
      cur_.reset();  // may run a death; the iteration survives it
      seek(pos_ + 1);
      return *this;
    }
    struct postfix {
      Strong<T> value;
      const Strong<T>& operator*() const noexcept { return value; }
    };
    postfix operator++(int) {
      postfix p{cur_};
      ++*this;
      return p;
    }
    friend bool operator==(const basic_iterator& a, const basic_iterator& b) noexcept {
      return a.guard_.table() == b.guard_.table() && (!a.guard_.table() || a.pos_ == b.pos_);
    }

   private:
    friend class WeakSet;
    explicit basic_iterator(const Table* t) : guard_(t) { seek(0); }
    void seek(std::uint32_t from) {
      pos_ = guard_.table()->next_live(from, cur_);
      if (pos_ == Table::npos) guard_.reset();
    }
    detail::IterationGuard<Table, Const> guard_;
    std::uint32_t pos_ = 0;
    Strong<T> cur_;
  };
  using iterator = basic_iterator<false>;
  using const_iterator = basic_iterator<true>;

  // -- Construction -----------------------------------------------------------

  WeakSet() noexcept = default;
  WeakSet(std::initializer_list<Strong<T>> items) { update(items); }
  template <std::input_iterator It, std::sentinel_for<It> S>
  WeakSet(It first, S last) {
    for (; first != last; ++first) add(*first);
  }
  template <class R>
    requires(element_range<R> && !std::is_same_v<std::remove_cvref_t<R>, WeakSet>)
  explicit WeakSet(R&& items) {
    update(std::forward<R>(items));
  }
  // A copy has weakrefs of its own (Python's copy()).
  WeakSet(const WeakSet& o) { update(o); }
  WeakSet(WeakSet&& o) noexcept {
    if (!o.table_.iterating()) {
      table_.swap(o.table_);
    } else {  // o is being iterated: its entries must not move (copying
      update(o);  // may throw bad_alloc, which terminates: noexcept)
      o.clear();
    }
  }
  WeakSet& operator=(const WeakSet& o) {
    if (this != &o) {
      WeakSet tmp(o);
      *this = std::move(tmp);
    }
    return *this;
  }
  WeakSet& operator=(WeakSet&& o) noexcept {
    if (this == &o) return *this;
    if (!table_.iterating() && !o.table_.iterating()) {
      WeakSet old(std::move(*this));  // released last, once *this is consistent
      table_.swap(o.table_);
    } else {  // one of them is being iterated: copy (see the move constructor)
      clear();
      update(o);
      o.clear();
    }
    return *this;
  }
  ~WeakSet() = default;

  void swap(WeakSet& o) noexcept {
    WeakSet tmp(std::move(o));
    o = std::move(*this);
    *this = std::move(tmp);
  }
  friend void swap(WeakSet& a, WeakSet& b) noexcept { a.swap(b); }

  // -- Elements -----------------------------------------------------------------

  // Python's add(): no-op when an equal element is there (no new weakref).
  // Throws std::invalid_argument for a null Strong (Python's TypeError).
  void add(const Strong<T>& x) {
    table_.maintain();
    Strong<T> held;
    if (find(x, held) != Table::npos) return;
    insert_new(x);
  }

  // Python's `x in s`. False for a null Strong.
  bool contains(const Strong<T>& x) const {
    Strong<T> held;
    return find(x, held) != Table::npos;
  }
  template <class U = T>
    requires(!Ops::kIdentity && std::is_same_v<U, T>)
  bool contains(const U& v) const {
    Strong<T> held;
    return Ops::find_value(table_, Ops::hash(v), v, held) != Table::npos;
  }
  size_type count(const Strong<T>& x) const { return contains(x) ? 1 : 0; }

  // Python's discard(): removes x if there.
  void discard(const Strong<T>& x) { erase(x); }
  // discard() returning how many elements were removed (0 or 1).
  size_type erase(const Strong<T>& x) {
    table_.maintain();
    Strong<T> held;
    std::uint32_t idx = find(x, held);
    if (idx == Table::npos) return 0;
    table_.remove(idx);
    table_.maintain();
    return 1;
  }
  template <class U = T>
    requires(!Ops::kIdentity && std::is_same_v<U, T>)
  size_type erase(const U& v) {
    table_.maintain();
    Strong<T> held;
    std::uint32_t idx = Ops::find_value(table_, Ops::hash(v), v, held);
    if (idx == Table::npos) return 0;
    table_.remove(idx);
    table_.maintain();
    return 1;
  }
  template <class U = T>
    requires(!Ops::kIdentity && std::is_same_v<U, T>)
  void discard(const U& v) {
    erase(v);
  }
  // Python's remove(): weakref::KeyError when x is not there.
  void remove(const Strong<T>& x) {
    if (!erase(x)) detail::key_error(x);
  }
  template <class U = T>
    requires(!Ops::kIdentity && std::is_same_v<U, T>)
  void remove(const U& v) {
    if (!erase(v)) detail::key_error(v);
  }

  // Python's pop(): removes and returns an element (the newest live one);
  // weakref::KeyError("pop from empty WeakSet") when empty.
  Strong<T> pop() {
    table_.maintain();
    for (std::uint32_t i = table_.used(); i-- > 0;) {
      detail::EntryWord w = table_.at(i).w;
      if (!detail::entry_live(w)) continue;
      Strong<T> x = detail::entry_lock<T>(w, table_.at(i).side);
      if (!x) continue;
      table_.remove(i);
      table_.maintain();
      return x;
    }
    detail::throw_key_error("'pop from empty WeakSet'");
  }

  void clear() noexcept { table_.clear(); }
  // Applies the removals queued by deaths now (every non-const call does it
  // first), giving their memory back.
  void prune() noexcept { table_.maintain(); }
  size_type size() const noexcept { return table_.size(); }
  bool empty() const noexcept { return size() == 0; }
  WeakSet copy() const { return WeakSet(*this); }

  iterator begin() { return iterator(&table_); }
  iterator end() noexcept { return iterator(); }
  const_iterator begin() const { return const_iterator(&table_); }
  const_iterator end() const noexcept { return const_iterator(); }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const noexcept { return end(); }

  // -- Set algebra (Python's methods; `other` is any range of elements) -------

  template <class R>
    requires element_range<R>
  void update(R&& other) {
    for (auto&& x : other) add(x);
  }
  void update(std::initializer_list<Strong<T>> other) {
    for (const Strong<T>& x : other) add(x);
  }

  template <class R>
    requires element_range<R>
  WeakSet union_(R&& other) const {
    WeakSet r(*this);
    r.update(std::forward<R>(other));
    return r;
  }
  template <class R>
    requires element_range<R>
  WeakSet intersection(R&& other) const {
    WeakSet r;
    for (auto&& x : other)
      if (contains(x)) r.add(x);
    return r;
  }
  template <class R>
    requires element_range<R>
  WeakSet difference(R&& other) const {
    WeakSet r(*this);
    r.difference_update(std::forward<R>(other));
    return r;
  }
  template <class R>
    requires element_range<R>
  WeakSet symmetric_difference(R&& other) const {
    WeakSet r(*this);
    r.symmetric_difference_update(std::forward<R>(other));
    return r;
  }

  template <class R>
    requires element_range<R>
  void intersection_update(R&& other) {
    if (is_self(other)) return;
    const WeakSet keep(other);
    table_.maintain();
    {
      // Releasing x may run a death's callbacks, which may use this set:
      // pinned, the table does not move under the loop.
      detail::IterationGuard<Table, false> pin(&table_);
      for (std::uint32_t i = 0; i < table_.used(); ++i) {
        detail::EntryWord w = table_.at(i).w;
        if (!detail::entry_live(w)) continue;
        Strong<T> x = detail::entry_lock<T>(w, table_.at(i).side);
        if (x && !keep.contains(x)) table_.remove(i);
      }
    }
  }
  template <class R>
    requires element_range<R>
  void difference_update(R&& other) {
    if (is_self(other)) {
      clear();
      return;
    }
    for (auto&& x : other) discard(x);
  }
  template <class R>
    requires element_range<R>
  void symmetric_difference_update(R&& other) {
    if (is_self(other)) {
      clear();
      return;
    }
    const WeakSet items(other);  // Python: set(other) first
    for (const Strong<T>& x : items) {
      if (!erase(x)) add(x);
    }
  }

  template <class R>
    requires element_range<R>
  bool issubset(R&& other) const {
    if constexpr (std::is_same_v<std::remove_cvref_t<R>, WeakSet>) {
      return subset_of(other);
    } else {
      return subset_of(WeakSet(other));
    }
  }
  template <class R>
    requires element_range<R>
  bool issuperset(R&& other) const {
    for (auto&& x : other)
      if (!contains(x)) return false;
    return true;
  }
  template <class R>
    requires element_range<R>
  bool isdisjoint(R&& other) const {
    for (auto&& x : other)
      if (contains(x)) return false;
    return true;
  }

  // -- Operators ------------------------------------------------------------------

  template <class R>
    requires element_range<R>
  friend WeakSet operator|(const WeakSet& a, R&& b) {
    return a.union_(std::forward<R>(b));
  }
  template <class R>
    requires element_range<R>
  friend WeakSet operator&(const WeakSet& a, R&& b) {
    return a.intersection(std::forward<R>(b));
  }
  template <class R>
    requires element_range<R>
  friend WeakSet operator-(const WeakSet& a, R&& b) {
    return a.difference(std::forward<R>(b));
  }
  template <class R>
    requires element_range<R>
  friend WeakSet operator^(const WeakSet& a, R&& b) {
    return a.symmetric_difference(std::forward<R>(b));
  }
  template <class R>
    requires element_range<R>
  WeakSet& operator|=(R&& b) {
    update(std::forward<R>(b));
    return *this;
  }
  template <class R>
    requires element_range<R>
  WeakSet& operator&=(R&& b) {
    intersection_update(std::forward<R>(b));
    return *this;
  }
  template <class R>
    requires element_range<R>
  WeakSet& operator-=(R&& b) {
    difference_update(std::forward<R>(b));
    return *this;
  }
  template <class R>
    requires element_range<R>
  WeakSet& operator^=(R&& b) {
    symmetric_difference_update(std::forward<R>(b));
    return *this;
  }

  // Python's ==: the same live elements.
  friend bool operator==(const WeakSet& a, const WeakSet& b) {
    return &a == &b || (a.size() == b.size() && a.subset_of(b));
  }
  // Python's < <= > >= (proper) subset and superset: a partial order.
  friend std::partial_ordering operator<=>(const WeakSet& a, const WeakSet& b) {
    if (&a == &b) return std::partial_ordering::equivalent;
    const bool le = a.subset_of(b);
    const bool ge = b.subset_of(a);
    if (le && ge) return std::partial_ordering::equivalent;
    if (le) return std::partial_ordering::less;
    if (ge) return std::partial_ordering::greater;
    return std::partial_ordering::unordered;
  }

  // WeakSet({<Node object at 0x...>, ...}) or WeakSet(); elements print
  // with their own operator<< when they have one.
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

  // The collector's view (weakref::gc::trace_traits<WeakSet>): the
  // elements' weakrefs; in clearing mode the set is emptied.
  void trace(gc::Visitor& v) {
    if (v.clearing()) {
      if (table_.used()) v.keep_until_done(WeakSet(std::move(*this)));
      return;
    }
    table_.trace_entries(
        [&](auto& e) { v.weak_slot(detail::entry_weak(e.w), &e.w, nullptr); },
        [](auto&) {});
  }

 private:
  std::uint32_t find(const Strong<T>& x, Strong<T>& held) const {
    return Ops::find(table_, x, held);
  }

  void insert_new(const Strong<T>& x) {
    detail::ObjectHeader* h = detail::StrongAccess::header(x);
    if (!h) detail::throw_null_referent();
    detail::EntryWeak* w =
        detail::entry_attach(h, table_.control(), detail::subobject_offset(x.get(), h));
    table_.insert(Ops::hash(x), w);
  }

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

  Table table_;
};

template <class T, class P>
struct gc::trace_traits<WeakSet<T, P>> {
  static void trace(WeakSet<T, P>& s, Visitor& v) { s.trace(v); }
};

}  // namespace weakref
