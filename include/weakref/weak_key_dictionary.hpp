// weakref::WeakKeyDictionary<K, V>: Python's weakref.WeakKeyDictionary, a
// mapping whose keys are objects held weakly (data attached to objects
// without keeping them alive).
//
//     weakref::WeakKeyDictionary<Widget, Style> styles;
//     styles.set(button, Style{...});     // Python: styles[button] = ...
//     styles.at(button).color = red;      // weakref::KeyError if absent
//     for (auto& [widget, style] : styles) ...   // widget is kept alive
//     button.reset();                     // its entry (and Style) is gone
//
// Keys are the same key when they are the same object (by_identity, the
// default). WeakKeyDictionary<K, V, weakref::by_value<>> hashes and compares
// the referents with std::hash<K> / == instead (Python's behaviour for keys
// that define __hash__ and __eq__); the hash is computed once, at insertion,
// so lookups stay correct after other keys die. Values are any nothrow-
// movable type, held strongly (as in Python, a value that refers to its own
// key keeps the key alive, unless the dictionary itself is garbage).
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
//    yielded; entries set during the iteration are yielded too. Values
//    yielded by an iteration stay valid until it ends: the value of an entry
//    removed meanwhile is destroyed when the last iteration ends (Python's
//    pending removals). Otherwise a reference to a value (at(),
//    setdefault()) stays valid until its entry is removed or a later
//    insertion compacts the table. Iterators stay valid whatever happens to
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
//    dictionary. Const member functions (get, at, contains, size, iteration
//    of a const dictionary, copy, keyrefs, ==, operator<<) never modify it
//    and may run concurrently with each other on any number of threads.
//
// Names: Python's (`d[k] = v` is set, `del d[k]` is del), plus std's erase
// (no exception, returns the count). Range-for yields (key, value) pairs, as
// std::unordered_map; keys() gives Python's `for k in d`.
// docs/python-mapping.md lists every difference from Python (differences 22-33);
// docs/threads.md states the thread rules in full.
#pragma once

#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <ostream>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/weak_container.hpp"
#include "gc.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

template <class K, class V, class KeyPolicy = by_identity>
class WeakKeyDictionary {
  static_assert(detail::weakly_referenceable<K>,
                "weakref::WeakKeyDictionary<K, V>: K cannot be weakly referenced (see "
                "weakref::ref<T>)");
  static_assert(std::is_nothrow_move_constructible_v<V>,
                "weakref::WeakKeyDictionary<K, V>: V must be nothrow-move-constructible");
  using Ops = detail::WeakKeyOps<K, KeyPolicy>;
  struct Traits {
    using Payload = V;
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
  static constexpr bool pair_range = detail::pair_range_of<R, Strong<K>, const V&>;

  enum class Kind { items, keys, values };

 public:
  using key_type = Strong<K>;
  using mapped_type = V;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using key_policy = KeyPolicy;

  // Iterators of items() (also range-for), keys() and values().
  template <Kind kind, bool Const>
  class basic_iterator {
    using Value = std::conditional_t<Const, const V, V>;
    using Item = std::pair<Strong<K>, Value&>;

   public:
    using iterator_category = std::input_iterator_tag;
    using iterator_concept = std::input_iterator_tag;
    using value_type = std::conditional_t<kind == Kind::items, Item,
                                          std::conditional_t<kind == Kind::keys, Strong<K>, V>>;
    using difference_type = std::ptrdiff_t;
    using reference = std::conditional_t<kind == Kind::items, Item&,
                                         std::conditional_t<kind == Kind::keys, const Strong<K>&,
                                                            Value&>>;

    basic_iterator() noexcept = default;
    // The current item holds references: assignment rebuilds it.
    basic_iterator(const basic_iterator& o) : guard_(o.guard_), pos_(o.pos_), cur_(o.cur_) {
      if (o.item_) item_.emplace(*o.item_);
    }
    basic_iterator(basic_iterator&& o) noexcept
        : guard_(std::move(o.guard_)), pos_(o.pos_), cur_(std::move(o.cur_)) {
      if (o.item_) item_.emplace(std::move(*o.item_));
    }
    basic_iterator& operator=(basic_iterator o) noexcept {
      guard_ = std::move(o.guard_);
      pos_ = o.pos_;
      cur_ = std::move(o.cur_);
      item_.reset();
      if (o.item_) item_.emplace(std::move(*o.item_));
      return *this;
    }
    ~basic_iterator() = default;

    reference operator*() const noexcept {
      if constexpr (kind == Kind::items)
        return *item_;
      else if constexpr (kind == Kind::keys)
        return cur_;
      else
        return guard_.table()->at(pos_).p.value;
    }
    auto operator->() const noexcept { return &**this; }
    basic_iterator& operator++() {
      item_.reset();
      cur_.reset();  // may run a death; the iteration survives it
      seek(pos_ + 1);
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const basic_iterator& a, const basic_iterator& b) noexcept {
      return a.guard_.table() == b.guard_.table() && (!a.guard_.table() || a.pos_ == b.pos_);
    }

   private:
    friend class WeakKeyDictionary;
    explicit basic_iterator(const Table* t) : guard_(t) { seek(0); }
    void seek(std::uint32_t from) {
      const Table* t = guard_.table();
      pos_ = t->next_live(from, cur_);
      if (pos_ == Table::npos) {
        guard_.reset();
        return;
      }
      if constexpr (kind == Kind::items) item_.emplace(std::move(cur_), t->at(pos_).p.value);
    }
    detail::IterationGuard<Table, Const> guard_;
    std::uint32_t pos_ = 0;
    Strong<K> cur_;
    mutable std::optional<Item> item_;
  };

  template <Kind kind, bool Const>
  class basic_view {
    using Dict = std::conditional_t<Const, const WeakKeyDictionary, WeakKeyDictionary>;

   public:
    auto begin() const { return basic_iterator<kind, Const>(&d_->table_); }
    auto end() const noexcept { return basic_iterator<kind, Const>(); }

   private:
    friend class WeakKeyDictionary;
    explicit basic_view(Dict* d) noexcept : d_(d) {}
    Dict* d_;
  };

  using iterator = basic_iterator<Kind::items, false>;
  using const_iterator = basic_iterator<Kind::items, true>;
  using value_type = typename iterator::value_type;

  // -- Construction -----------------------------------------------------------

  WeakKeyDictionary() noexcept = default;
  WeakKeyDictionary(std::initializer_list<std::pair<Strong<K>, V>> items) { update(items); }
  template <class R>
    requires(pair_range<R> && !std::is_same_v<std::remove_cvref_t<R>, WeakKeyDictionary>)
  explicit WeakKeyDictionary(R&& items) {
    update(std::forward<R>(items));
  }
  template <std::input_iterator It, std::sentinel_for<It> S>
  WeakKeyDictionary(It first, S last) {
    for (; first != last; ++first) {
      auto&& p = *first;
      set(std::get<0>(p), std::get<1>(p));
    }
  }
  // A copy has weakrefs of its own and copies of the values (Python's copy()).
  WeakKeyDictionary(const WeakKeyDictionary& o) { update(o); }
  WeakKeyDictionary(WeakKeyDictionary&& o) noexcept {
    if (!o.table_.iterating()) {
      table_.swap(o.table_);
    } else {  // o is being iterated: its entries must not move (copying
      update(o);  // may throw bad_alloc, which terminates: noexcept)
      o.clear();
    }
  }
  WeakKeyDictionary& operator=(const WeakKeyDictionary& o) {
    if (this != &o) {
      WeakKeyDictionary tmp(o);
      *this = std::move(tmp);
    }
    return *this;
  }
  WeakKeyDictionary& operator=(WeakKeyDictionary&& o) noexcept {
    if (this == &o) return *this;
    if (!table_.iterating() && !o.table_.iterating()) {
      WeakKeyDictionary old(std::move(*this));  // released once *this is consistent
      table_.swap(o.table_);
    } else {  // one of them is being iterated: copy (see the move constructor)
      clear();
      update(o);
      o.clear();
    }
    return *this;
  }
  ~WeakKeyDictionary() = default;

  void swap(WeakKeyDictionary& o) noexcept {
    WeakKeyDictionary tmp(std::move(o));
    o = std::move(*this);
    *this = std::move(tmp);
  }
  friend void swap(WeakKeyDictionary& a, WeakKeyDictionary& b) noexcept { a.swap(b); }

  // -- Mapping ------------------------------------------------------------------

  // Python's d[k] = v. Throws std::invalid_argument for a null key.
  template <class U = V>
    requires std::is_constructible_v<V, U&&> && std::is_assignable_v<V&, U&&>
  void set(const Strong<K>& key, U&& value) {
    table_.maintain();
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx != Table::npos) {
      // The old value's destructor is user code: the table stays pinned.
      detail::IterationGuard<Table, false> pin(&table_);
      table_.at(idx).p.value = std::forward<U>(value);
      return;
    }
    insert_new(key, std::forward<U>(value));
  }

  // Python's get(k[, default]).
  std::optional<V> get(const Strong<K>& key) const
    requires std::copy_constructible<V>
  {
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx == Table::npos) return std::nullopt;
    return table_.at(idx).p.value;
  }
  V get(const Strong<K>& key, V def) const
    requires std::copy_constructible<V>
  {
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx == Table::npos) return def;
    return table_.at(idx).p.value;
  }
  // Python's d[k]: weakref::KeyError when absent.
  V& at(const Strong<K>& key) { return table_.at(require(key)).p.value; }
  const V& at(const Strong<K>& key) const { return table_.at(require(key)).p.value; }
  bool contains(const Strong<K>& key) const {
    Strong<K> held;
    return find(key, held) != Table::npos;
  }
  size_type count(const Strong<K>& key) const { return contains(key) ? 1 : 0; }

  // by_value keys may also be looked up by value (Python: any equal object).
  template <class U = K>
    requires(!Ops::kIdentity && std::is_same_v<U, K>)
  V& at(const U& key) {
    return table_.at(require_value(key)).p.value;
  }
  template <class U = K>
    requires(!Ops::kIdentity && std::is_same_v<U, K>)
  const V& at(const U& key) const {
    return table_.at(require_value(key)).p.value;
  }
  template <class U = K>
    requires(!Ops::kIdentity && std::is_same_v<U, K>)
  bool contains(const U& key) const {
    Strong<K> held;
    return Ops::find_value(table_, Ops::hash(key), key, held) != Table::npos;
  }

  // Python's del d[k]: weakref::KeyError when absent.
  void del(const Strong<K>& key) {
    if (!erase(key)) detail::key_error(key);
  }
  // del without the exception: how many entries were removed (0 or 1).
  size_type erase(const Strong<K>& key) {
    table_.maintain();
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx == Table::npos) return 0;
    table_.remove(idx);
    table_.maintain();
    return 1;
  }

  // Python's pop(k[, default]): the value, removed; weakref::KeyError when
  // absent and no default.
  V pop(const Strong<K>& key) {
    if (std::optional<V> v = take(key)) return std::move(*v);
    detail::key_error(key);
  }
  V pop(const Strong<K>& key, V def) {
    if (std::optional<V> v = take(key)) return std::move(*v);
    return def;
  }

  // Python's popitem(): the newest live entry, removed; weakref::KeyError
  // when empty.
  std::pair<Strong<K>, V> popitem() {
    table_.maintain();
    for (std::uint32_t i = table_.used(); i-- > 0;) {
      if (!detail::entry_live(table_.at(i).w)) continue;
      Strong<K> k = detail::entry_lock<K>(table_.at(i).w, table_.at(i).side);
      if (!k) continue;
      table_.remove(i);  // the value stays alive until maintain()
      std::pair<Strong<K>, V> item(std::move(k), std::move(table_.at(i).p.value));
      table_.maintain();
      return item;
    }
    detail::throw_key_error("'popitem(): dictionary is empty'");
  }

  // Python's setdefault(k, v): the value of k, after setting it to v if k
  // was absent.
  template <class U = V>
    requires std::is_constructible_v<V, U&&>
  V& setdefault(const Strong<K>& key, U&& value = U()) {
    table_.maintain();
    Strong<K> held;
    std::uint32_t idx = find(key, held);
    if (idx == Table::npos) idx = insert_new(key, std::forward<U>(value));
    return table_.at(idx).p.value;
  }

  // Python's update(): from another dictionary or a range of (key, value)
  // pairs.
  template <class R>
    requires pair_range<R>
  void update(R&& items) {
    for (auto&& p : items) set(std::get<0>(p), std::get<1>(p));
  }
  void update(std::initializer_list<std::pair<Strong<K>, V>> items) {
    for (const auto& p : items) set(p.first, p.second);
  }

  void clear() noexcept { table_.clear(); }
  // Applies the removals queued by deaths now (every non-const call does it
  // first): destroys the values of entries whose key died.
  void prune() noexcept { table_.maintain(); }
  size_type size() const noexcept { return table_.size(); }
  bool empty() const noexcept { return size() == 0; }
  WeakKeyDictionary copy() const { return WeakKeyDictionary(*this); }

  // -- Views and iteration ----------------------------------------------------------

  iterator begin() { return iterator(&table_); }
  iterator end() noexcept { return iterator(); }
  const_iterator begin() const { return const_iterator(&table_); }
  const_iterator end() const noexcept { return const_iterator(); }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const noexcept { return end(); }

  basic_view<Kind::items, false> items() noexcept { return basic_view<Kind::items, false>(this); }
  basic_view<Kind::keys, false> keys() noexcept { return basic_view<Kind::keys, false>(this); }
  basic_view<Kind::values, false> values() noexcept {
    return basic_view<Kind::values, false>(this);
  }
  basic_view<Kind::items, true> items() const noexcept {
    return basic_view<Kind::items, true>(this);
  }
  basic_view<Kind::keys, true> keys() const noexcept { return basic_view<Kind::keys, true>(this); }
  basic_view<Kind::values, true> values() const noexcept {
    return basic_view<Kind::values, true>(this);
  }

  // Python's keyrefs(): the weakrefs of the live entries, in insertion
  // order (a key may die right after). They live on after their entries.
  std::vector<ref<K>> keyrefs() const {
    std::vector<ref<K>> out;
    out.reserve(table_.used());
    table_.for_each_live([&](std::uint32_t, const auto& e) {
      detail::EntryWeak* w = detail::entry_weak(e.w);
      if (!detail::weak_alive(w)) return;  // dead, its removal not applied yet
      detail::weak_acquire(w);
      out.push_back(ref<K>::adopt_weak_object(w, pointer_of(w)));
    });
    return out;
  }

  // -- Operators --------------------------------------------------------------------

  template <class R>
    requires pair_range<R>
  friend WeakKeyDictionary operator|(const WeakKeyDictionary& a, R&& b) {
    WeakKeyDictionary r(a);
    r.update(std::forward<R>(b));
    return r;
  }
  // Python's __ror__: a mapping | WeakKeyDictionary.
  template <class R>
    requires(pair_range<R> && !std::is_same_v<std::remove_cvref_t<R>, WeakKeyDictionary>)
  friend WeakKeyDictionary operator|(R&& a, const WeakKeyDictionary& b) {
    WeakKeyDictionary r(std::forward<R>(a));
    r.update(b);
    return r;
  }
  template <class R>
    requires pair_range<R>
  WeakKeyDictionary& operator|=(R&& b) {
    update(std::forward<R>(b));
    return *this;
  }

  // Python's ==: the same live keys, mapped to equal values.
  friend bool operator==(const WeakKeyDictionary& a, const WeakKeyDictionary& b)
    requires std::equality_comparable<V>
  {
    if (&a == &b) return true;
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a) {
      Strong<K> held;
      const std::uint32_t idx = b.find(k, held);
      if (idx == Table::npos || !(b.table_.at(idx).p.value == v)) return false;
    }
    return true;
  }

  // <WeakKeyDictionary at 0x...>
  friend std::ostream& operator<<(std::ostream& os, const WeakKeyDictionary& d) {
    return detail::write_container_address(os, "WeakKeyDictionary", &d);
  }

  // The collector's view (weakref::gc::trace_traits): the entries' weakrefs
  // and the values; in clearing mode the dictionary is emptied.
  void trace(gc::Visitor& v) {
    if (v.clearing()) {
      if (table_.used()) v.keep_until_done(WeakKeyDictionary(std::move(*this)));
      return;
    }
    table_.trace_entries([&](auto& e) { v.weak_slot(detail::entry_weak(e.w), &e.w, nullptr); },
                         [&](V& value) {
                           if constexpr (gc::detail::visitable<V>()) v(std::as_const(value));
                         });
  }

 private:
  std::uint32_t find(const Strong<K>& key, Strong<K>& held) const {
    return Ops::find(table_, key, held);
  }
  std::uint32_t require(const Strong<K>& key) const {
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx == Table::npos) detail::key_error(key);
    return idx;
  }
  template <class U>
  std::uint32_t require_value(const U& key) const {
    Strong<K> held;
    const std::uint32_t idx = Ops::find_value(table_, Ops::hash(key), key, held);
    if (idx == Table::npos) detail::key_error(key);
    return idx;
  }

  template <class U>
  std::uint32_t insert_new(const Strong<K>& key, U&& value) {
    detail::ObjectHeader* h = detail::StrongAccess::header(key);
    if (!h) detail::throw_null_referent();
    const std::size_t hash = Ops::hash(key);
    detail::EntryWeak* w =
        detail::entry_attach(h, table_.control(), detail::subobject_offset(key.get(), h));
    return table_.insert(hash, w, std::forward<U>(value));
  }

  std::optional<V> take(const Strong<K>& key) {
    table_.maintain();
    Strong<K> held;
    const std::uint32_t idx = find(key, held);
    if (idx == Table::npos) return std::nullopt;
    table_.remove(idx);  // the value stays alive until maintain()
    std::optional<V> v(std::move(table_.at(idx).p.value));
    table_.maintain();
    return v;
  }

  static K* pointer_of(detail::EntryWeak* w) noexcept {
    return reinterpret_cast<K*>(reinterpret_cast<std::uintptr_t>(w->side_table()->object) +
                                sizeof(detail::ObjectHeader) + w->offset);
  }

  Table table_;
};

template <class K, class V, class P>
struct gc::trace_traits<WeakKeyDictionary<K, V, P>> {
  static void trace(WeakKeyDictionary<K, V, P>& d, Visitor& v) { d.trace(v); }
};

}  // namespace weakref
