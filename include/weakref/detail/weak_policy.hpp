// The policies of the weak containers: one object per container kind that
// tells the table (weak_table.hpp) and the container core
// (weak_container.hpp) what an entry holds and how it is found.
//
//   WeakKeyPolicy<T, Payload, KeyPolicy>  WeakKeyDictionary<T, Payload> and
//                                         WeakSet<T> (Payload void): the
//                                         referent is the key, compared
//                                         under by_identity or by_value.
//   WeakValuePolicy<K, V, Hash, KeyEqual> WeakValueDictionary<K, V>: the
//                                         payload is the key, the referent
//                                         the value.
//
// Every policy has
//   Referent, Payload      the type held weakly, the type stored (or void)
//   Key, Item              what a lookup takes; what an initializer list
//                          holds
//   kWeakKey               whether the referent is the key
//   kByValue               whether keys may also be looked up by a plain
//                          referent value (by_value)
//   kStoredHash            whether entries keep their hash (else
//                          entry_hash(e) recomputes it, noexcept)
//   accepts<R>             the ranges update() and operator| take
//   hash(key), find(...)   the lookup of a key (the front ends call them)
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../key_policy.hpp"
#include "../strong.hpp"
#include "entry_weak.hpp"

namespace weakref::detail {

// A range of elements convertible to E (constructors, update, set algebra).
template <class R, class E>
concept range_of =
    std::ranges::input_range<R> && std::is_convertible_v<std::ranges::range_reference_t<R>, E>;

// A range of (key, value) pairs (std::map, a vector of pairs, a dictionary).
template <class R, class K, class V>
concept pair_range_of = std::ranges::input_range<R> &&
    requires(std::ranges::range_reference_t<R> p) {
  { std::get<0>(p) } -> std::convertible_to<K>;
  { std::get<1>(p) } -> std::convertible_to<V>;
};

template <class R, class T, class P>
constexpr bool accepts_keys() {
  if constexpr (std::is_void_v<P>)
    return range_of<R, Strong<T>>;
  else
    return pair_range_of<R, Strong<T>, const P&>;
}

template <class T, class P>
struct KeyItem {
  using type = std::pair<Strong<T>, P>;
};
template <class T>
struct KeyItem<T, void> {
  using type = Strong<T>;
};

// What the key policies share: the referent is the key.
template <class T, class P>
struct WeakKeyPolicyBase {
  using Referent = T;
  using Payload = P;
  using Key = Strong<T>;
  using Item = typename KeyItem<T, P>::type;
  static constexpr bool kWeakKey = true;
  template <class R>
  static constexpr bool accepts = accepts_keys<R, T, P>();
};

template <class T, class Payload, class KeyPolicy>
struct WeakKeyPolicy;

// by_identity: the same object. Lookups compare side tables and run no user
// code; the hash (the object's address) is recomputed, not stored.
template <class T, class P>
struct WeakKeyPolicy<T, P, by_identity> : WeakKeyPolicyBase<T, P> {
  static constexpr bool kByValue = false;
  static constexpr bool kStoredHash = false;

  template <class E>
  static std::size_t entry_hash(const E& e) noexcept {
    return identity_hash(e.side->object);
  }
  static std::size_t hash(const Strong<T>& x) noexcept {
    return identity_hash(StrongAccess::header(x));
  }
  // The live entry for x, or npos.
  template <class Table>
  static std::uint32_t find(const Table& t, const Strong<T>& x, Strong<T>&) {
    ObjectHeader* h = StrongAccess::header(x);
    if (!h) return Table::npos;
    const SideTable* s = side_if_any(h);
    if (!s) return Table::npos;  // no weakref at all: in no container
    return t.find(identity_hash(h),
                  [s](std::uint32_t, const auto& e) noexcept { return e.side == s; });
  }
  static bool equal(const Strong<T>& a, const Strong<T>& b) noexcept { return a == b; }
};

// by_value<H, Eq>: equal referents. The hash is stored at insertion.
template <class T, class P, class H, class Eq>
struct WeakKeyPolicy<T, P, by_value<H, Eq>> : WeakKeyPolicyBase<T, P> {
  static_assert(!std::is_void_v<T>, "by_value needs the key's type");
  using Hash = std::conditional_t<std::is_void_v<H>, std::hash<T>, H>;
  using KeyEqual = std::conditional_t<std::is_void_v<Eq>, std::equal_to<T>, Eq>;
  static constexpr bool kByValue = true;
  static constexpr bool kStoredHash = true;

  static std::size_t hash(const T& v) { return Hash{}(v); }
  static std::size_t hash(const Strong<T>& x) { return Hash{}(*x); }
  // The live entry whose referent equals v; `held` keeps that referent alive
  // for the caller. Candidates are locked for the comparison, which is user
  // code (it may even drop the last reference to other keys); the table's
  // find() starts again if the table changed meanwhile.
  template <class Table>
  static std::uint32_t find_value(const Table& t, std::size_t hash, const T& v, Strong<T>& held) {
    return t.find(hash, [&](std::uint32_t, const auto& e) {
      Strong<T> c = entry_lock<T>(e.w, e.side);
      if (!c || !KeyEqual{}(*c, v)) return false;
      held = std::move(c);
      return true;
    });
  }
  template <class Table>
  static std::uint32_t find(const Table& t, const Strong<T>& x, Strong<T>& held) {
    if (!x) return Table::npos;
    return find_value(t, hash(x), *x, held);
  }
  static bool equal(const Strong<T>& a, const Strong<T>& b) {
    return a == b || (a && b && KeyEqual{}(*a, *b));
  }
};

// WeakValueDictionary: keys are ordinary values, hashed with Hash and
// compared with KeyEqual; cheap hashes are recomputed instead of stored (8
// bytes less per entry).
template <class K, class V, class Hash, class KeyEqual>
struct WeakValuePolicy {
  using Referent = V;
  using Payload = K;
  using Key = K;
  using Item = std::pair<K, Strong<V>>;
  static constexpr bool kWeakKey = false;
  static constexpr bool kByValue = false;
  static constexpr bool kStoredHash =
      !(std::is_same_v<Hash, std::hash<K>> &&
        (std::is_arithmetic_v<K> || std::is_enum_v<K> || std::is_pointer_v<K>));
  template <class R>
  static constexpr bool accepts = pair_range_of<R, const K&, Strong<V>>;

  template <class E>
  static std::size_t entry_hash(const E& e) noexcept {
    return Hash{}(e.p.value);
  }
  static std::size_t hash(const K& key) { return Hash{}(key); }
  // The entry for key, live or not, as an index (npos if none) or as the
  // entry itself (null).
  template <class Table>
  static std::uint32_t find(const Table& t, std::size_t hash, const K& key) {
    return t.find(hash, [&](std::uint32_t, const auto& e) { return KeyEqual{}(e.p.value, key); });
  }
  template <class Table>
  static auto find_entry(const Table& t, std::size_t hash, const K& key) {
    return t.find_entry(hash,
                        [&](std::uint32_t, const auto& e) { return KeyEqual{}(e.p.value, key); });
  }
};

}  // namespace weakref::detail
