// weakref::WeakValueDictionary<K, V>: Python's weakref.WeakValueDictionary,
// a mapping whose values are objects held weakly.
//
//     weakref::WeakValueDictionary<std::string, Image> cache;
//     cache.set("logo", img);             // Python: cache["logo"] = img
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
//    yielded; entries set during the iteration are yielded too. Keys yielded
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
//    dictionary. Const member functions (get, at, contains, size, iteration
//    of a const dictionary, copy, valuerefs, ==, operator<<) never modify
//    it and may run concurrently with each other on any number of threads.
//
// Names: Python's (`d[k] = v` is set, `del d[k]` is del), plus std's erase
// (no exception, returns the count). Range-for yields (key, value) pairs, as
// std::unordered_map; keys() gives Python's `for k in d`.
// docs/python-mapping.md lists every difference from Python (differences 22-33);
// docs/threads.md states the thread rules in full.
#pragma once

#include <cstddef>
#include <functional>
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

template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class WeakValueDictionary {
  static_assert(detail::weakly_referenceable<V>,
                "weakref::WeakValueDictionary<K, V>: V cannot be weakly referenced (see "
                "weakref::ref<T>)");
  static_assert(std::is_nothrow_move_constructible_v<K>,
                "weakref::WeakValueDictionary<K, V>: K must be nothrow-move-constructible");

  // Cheap hashes are recomputed instead of stored (8 bytes less per entry).
  static constexpr bool kCheapHash =
      std::is_same_v<Hash, std::hash<K>> &&
      (std::is_arithmetic_v<K> || std::is_enum_v<K> || std::is_pointer_v<K>);
  struct Traits {
    using Payload = K;
    static constexpr bool kStoredHash = !kCheapHash;
    template <class E>
    static std::size_t entry_hash(const E& e) noexcept {
      return Hash{}(e.p.value);
    }
  };
  using Table = detail::WeakTable<Traits>;

  template <class R>
  static constexpr bool pair_range = detail::pair_range_of<R, const K&, Strong<V>>;

  enum class Kind { items, keys, values };

 public:
  using key_type = K;
  using mapped_type = Strong<V>;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using hasher = Hash;
  using key_equal = KeyEqual;

  // Iterators of items() (also range-for), keys() and values().
  template <Kind kind, bool Const>
  class basic_iterator {
    using Item = std::pair<const K&, Strong<V>>;

   public:
    using iterator_category = std::input_iterator_tag;
    using iterator_concept = std::input_iterator_tag;
    using value_type =
        std::conditional_t<kind == Kind::items, Item,
                           std::conditional_t<kind == Kind::keys, K, Strong<V>>>;
    using difference_type = std::ptrdiff_t;
    using reference =
        std::conditional_t<kind == Kind::items, Item&,
                           std::conditional_t<kind == Kind::keys, const K&, const Strong<V>&>>;

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
        return guard_.table()->at(pos_).p.value;
      else
        return cur_;
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
    friend class WeakValueDictionary;
    explicit basic_iterator(const Table* t) : guard_(t) { seek(0); }
    void seek(std::uint32_t from) {
      const Table* t = guard_.table();
      pos_ = t->next_live(from, cur_);
      if (pos_ == Table::npos) {
        guard_.reset();
        return;
      }
      if constexpr (kind == Kind::items) item_.emplace(t->at(pos_).p.value, std::move(cur_));
    }
    detail::IterationGuard<Table, Const> guard_;
    std::uint32_t pos_ = 0;
    Strong<V> cur_;
    mutable std::optional<Item> item_;
  };

  template <Kind kind>
  class view {
   public:
    auto begin() const { return basic_iterator<kind, false>(&d_->table_); }
    auto end() const noexcept { return basic_iterator<kind, false>(); }

   private:
    friend class WeakValueDictionary;
    explicit view(WeakValueDictionary* d) noexcept : d_(d) {}
    WeakValueDictionary* d_;
  };
  template <Kind kind>
  class const_view {
   public:
    auto begin() const { return basic_iterator<kind, true>(&d_->table_); }
    auto end() const noexcept { return basic_iterator<kind, true>(); }

   private:
    friend class WeakValueDictionary;
    explicit const_view(const WeakValueDictionary* d) noexcept : d_(d) {}
    const WeakValueDictionary* d_;
  };

  using iterator = basic_iterator<Kind::items, false>;
  using const_iterator = basic_iterator<Kind::items, true>;
  using value_type = typename iterator::value_type;

  // -- Construction -----------------------------------------------------------

  WeakValueDictionary() noexcept = default;
  WeakValueDictionary(std::initializer_list<std::pair<K, Strong<V>>> items) { update(items); }
  template <class R>
    requires(pair_range<R> && !std::is_same_v<std::remove_cvref_t<R>, WeakValueDictionary>)
  explicit WeakValueDictionary(R&& items) {
    update(std::forward<R>(items));
  }
  template <std::input_iterator It, std::sentinel_for<It> S>
  WeakValueDictionary(It first, S last) {
    for (; first != last; ++first) {
      auto&& p = *first;
      set(std::get<0>(p), std::get<1>(p));
    }
  }
  // A copy has weakrefs of its own (Python's copy()).
  WeakValueDictionary(const WeakValueDictionary& o) { update(o); }
  WeakValueDictionary(WeakValueDictionary&& o) noexcept {
    if (!o.table_.iterating()) {
      table_.swap(o.table_);
    } else {  // o is being iterated: its entries must not move (copying
      update(o);  // may throw bad_alloc, which terminates: noexcept)
      o.clear();
    }
  }
  WeakValueDictionary& operator=(const WeakValueDictionary& o) {
    if (this != &o) {
      WeakValueDictionary tmp(o);
      *this = std::move(tmp);
    }
    return *this;
  }
  WeakValueDictionary& operator=(WeakValueDictionary&& o) noexcept {
    if (this == &o) return *this;
    if (!table_.iterating() && !o.table_.iterating()) {
      WeakValueDictionary old(std::move(*this));
      table_.swap(o.table_);
    } else {  // one of them is being iterated: copy (see the move constructor)
      clear();
      update(o);
      o.clear();
    }
    return *this;
  }
  ~WeakValueDictionary() = default;

  void swap(WeakValueDictionary& o) noexcept {
    WeakValueDictionary tmp(std::move(o));
    o = std::move(*this);
    *this = std::move(tmp);
  }
  friend void swap(WeakValueDictionary& a, WeakValueDictionary& b) noexcept { a.swap(b); }

  // -- Mapping ------------------------------------------------------------------

  // Python's d[k] = v. Throws std::invalid_argument for a null value.
  void set(const K& key, const Strong<V>& value) { set_impl(key, value); }
  void set(K&& key, const Strong<V>& value) { set_impl(std::move(key), value); }

  // Python's get(k[, default]): the value, or null (`def`) when missing or
  // dead.
  Strong<V> get(const K& key) const {
    const auto* e = table_.find_entry(Hash{}(key), [&](std::uint32_t, const auto& x) {
      return KeyEqual{}(x.p.value, key);
    });
    return e ? detail::entry_lock<V>(e->w, e->side) : Strong<V>();
  }
  Strong<V> get(const K& key, Strong<V> def) const {
    if (Strong<V> v = get(key)) return v;
    return def;
  }
  // Python's d[k]: weakref::KeyError when missing or dead.
  Strong<V> at(const K& key) const {
    if (Strong<V> v = get(key)) return v;
    detail::key_error(key);
  }
  bool contains(const K& key) const {
    const std::uint32_t idx = find(Hash{}(key), key);
    return idx != Table::npos && alive(idx);
  }
  size_type count(const K& key) const { return contains(key) ? 1 : 0; }

  // Python's del d[k]: weakref::KeyError when missing or dead.
  void del(const K& key) {
    if (!erase(key)) detail::key_error(key);
  }
  // del without the exception: how many entries were removed (0 or 1).
  size_type erase(const K& key) {
    table_.maintain();
    const std::uint32_t idx = find(Hash{}(key), key);
    if (idx == Table::npos || !alive(idx)) return 0;
    table_.remove(idx);
    table_.maintain();
    return 1;
  }

  // Python's pop(k): the value, removed; weakref::KeyError when missing.
  Strong<V> pop(const K& key) {
    if (Strong<V> v = take(key)) return v;
    detail::key_error(key);
  }
  Strong<V> pop(const K& key, Strong<V> def) {
    if (Strong<V> v = take(key)) return v;
    return def;
  }

  // Python's popitem(): the newest live entry, removed; weakref::KeyError
  // when empty.
  std::pair<K, Strong<V>> popitem() {
    table_.maintain();
    for (std::uint32_t i = table_.used(); i-- > 0;) {
      if (!detail::entry_live(table_.at(i).w)) continue;
      Strong<V> v = lock(i);
      if (!v) continue;
      table_.remove(i);  // the key stays alive until maintain()
      std::pair<K, Strong<V>> item(std::move(table_.at(i).p.value), std::move(v));
      table_.maintain();
      return item;
    }
    detail::throw_key_error("'popitem(): dictionary is empty'");
  }

  // Python's setdefault(k, v): the live value of k, or v after setting it.
  Strong<V> setdefault(const K& key, const Strong<V>& value) {
    if (Strong<V> v = get(key)) return v;
    set(key, value);
    return value;
  }

  // Python's update(): from another dictionary or a range of (key, value)
  // pairs (std::map<K, Strong<V>>, a vector of pairs, ...).
  template <class R>
    requires pair_range<R>
  void update(R&& items) {
    for (auto&& p : items) set(std::get<0>(p), std::get<1>(p));
  }
  void update(std::initializer_list<std::pair<K, Strong<V>>> items) {
    for (const auto& p : items) set(p.first, p.second);
  }

  void clear() noexcept { table_.clear(); }
  // Applies the removals queued by deaths now (every non-const call does it
  // first): destroys the keys of entries whose value died.
  void prune() noexcept { table_.maintain(); }
  size_type size() const noexcept { return table_.size(); }
  bool empty() const noexcept { return size() == 0; }
  WeakValueDictionary copy() const { return WeakValueDictionary(*this); }

  // -- Views and iteration ----------------------------------------------------------

  iterator begin() { return iterator(&table_); }
  iterator end() noexcept { return iterator(); }
  const_iterator begin() const { return const_iterator(&table_); }
  const_iterator end() const noexcept { return const_iterator(); }
  const_iterator cbegin() const { return begin(); }
  const_iterator cend() const noexcept { return end(); }

  view<Kind::items> items() noexcept { return view<Kind::items>(this); }
  view<Kind::keys> keys() noexcept { return view<Kind::keys>(this); }
  view<Kind::values> values() noexcept { return view<Kind::values>(this); }
  const_view<Kind::items> items() const noexcept { return const_view<Kind::items>(this); }
  const_view<Kind::keys> keys() const noexcept { return const_view<Kind::keys>(this); }
  const_view<Kind::values> values() const noexcept { return const_view<Kind::values>(this); }

  // Python's valuerefs(): the weakrefs of the live entries, in insertion
  // order (a value may die right after). They live on after their entries.
  std::vector<ref<V>> valuerefs() const {
    std::vector<ref<V>> out;
    out.reserve(table_.used());
    table_.for_each_live([&](std::uint32_t, const auto& e) {
      detail::EntryWeak* w = detail::entry_weak(e.w);
      if (!detail::weak_alive(w)) return;  // dead, its removal not applied yet
      detail::weak_acquire(w);
      out.push_back(ref<V>::adopt_weak_object(w, pointer_of(w)));
    });
    return out;
  }

  // -- Operators --------------------------------------------------------------------

  template <class R>
    requires pair_range<R>
  friend WeakValueDictionary operator|(const WeakValueDictionary& a, R&& b) {
    WeakValueDictionary r(a);
    r.update(std::forward<R>(b));
    return r;
  }
  // Python's __ror__: a mapping | WeakValueDictionary.
  template <class R>
    requires(pair_range<R> && !std::is_same_v<std::remove_cvref_t<R>, WeakValueDictionary>)
  friend WeakValueDictionary operator|(R&& a, const WeakValueDictionary& b) {
    WeakValueDictionary r(std::forward<R>(a));
    r.update(b);
    return r;
  }
  template <class R>
    requires pair_range<R>
  WeakValueDictionary& operator|=(R&& b) {
    update(std::forward<R>(b));
    return *this;
  }

  // Python's ==: the same live keys, mapped to the same objects.
  friend bool operator==(const WeakValueDictionary& a, const WeakValueDictionary& b) {
    if (&a == &b) return true;
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a)
      if (b.get(k) != v) return false;
    return true;
  }

  // <WeakValueDictionary at 0x...>
  friend std::ostream& operator<<(std::ostream& os, const WeakValueDictionary& d) {
    return detail::write_container_address(os, "WeakValueDictionary", &d);
  }

  // The collector's view (weakref::gc::trace_traits): the entries' weakrefs
  // and the keys when they hold references; in clearing mode it is emptied.
  void trace(gc::Visitor& v) {
    if (v.clearing()) {
      if (table_.used()) v.keep_until_done(WeakValueDictionary(std::move(*this)));
      return;
    }
    table_.trace_entries([&](auto& e) { v.weak_slot(detail::entry_weak(e.w), &e.w, nullptr); },
                         [&](K& key) {
                           if constexpr (gc::detail::visitable<K>()) v(std::as_const(key));
                         });
  }

 private:
  template <class KK>
  void set_impl(KK&& key, const Strong<V>& value) {
    table_.maintain();
    detail::ObjectHeader* h = detail::StrongAccess::header(value);
    if (!h) detail::throw_null_referent();
    const std::size_t hash = Hash{}(key);
    const std::uint32_t idx = find(hash, key);
    detail::EntryWeak* w =
        detail::entry_attach(h, table_.control(), detail::subobject_offset(value.get(), h));
    if (idx != Table::npos)
      table_.replace_weak(idx, w);
    else
      table_.insert(hash, w, std::forward<KK>(key));
  }

  std::uint32_t find(std::size_t hash, const K& key) const {
    return table_.find(hash, [&](std::uint32_t, const auto& e) {
      return KeyEqual{}(e.p.value, key);
    });
  }
  bool alive(std::uint32_t idx) const noexcept {
    return detail::entry_alive(table_.at(idx).w, table_.at(idx).side);
  }
  Strong<V> lock(std::uint32_t idx) const noexcept {
    return detail::entry_lock<V>(table_.at(idx).w, table_.at(idx).side);
  }
  // The value's address as entry_lock computes it (the ref handle keeps it
  // for when its referent is alive); no dereference of the object.
  static V* pointer_of(detail::EntryWeak* w) noexcept {
    return reinterpret_cast<V*>(reinterpret_cast<std::uintptr_t>(w->side_table()->object) +
                                sizeof(detail::ObjectHeader) + w->offset);
  }
  Strong<V> take(const K& key) {
    table_.maintain();
    const std::uint32_t idx = find(Hash{}(key), key);
    if (idx == Table::npos) return {};
    Strong<V> v = lock(idx);
    if (!v) return {};
    table_.remove(idx);
    table_.maintain();
    return v;
  }

  Table table_;
};

template <class K, class V, class H, class E>
struct gc::trace_traits<WeakValueDictionary<K, V, H, E>> {
  static void trace(WeakValueDictionary<K, V, H, E>& d, Visitor& v) { d.trace(v); }
};

}  // namespace weakref
