// What the collector can see in a type, decided at compile time, and the
// aggregate reflection that traces plain structs without a trace() function.
//
// visitable<X>(): whether X holds anything the collector must see (what
// gc::Visitor visits): Strong<>, the weak handles (ref, proxy, WeakMethod),
// types with a trace() member, a free trace() or a gc::trace_traits
// specialization (the weak containers), std::optional / unique_ptr / pair /
// tuple / variant and ranges (vector, map, array, C arrays, ...) of those,
// and reflectable aggregates with such a field.
//
// auto_traced<T>: a managed T (make<T>) is traced without a trace()
// function when it has none but is visitable itself -- a plain struct with a
// Strong<> member, say -- unless gc::auto_trace<T> is specialized false.
// gc::Visitor then visits its fields (a nested reflectable aggregate's
// fields in turn).
//
// Aggregate reflection (as Boost.PFR does it, without its hacks): a class T
// is reflected when
//  * it is an aggregate and not a union, with no base class;
//  * it has at most kMaxReflectedFields (32) fields, none of them a C array
//    (use std::array), a union (named or anonymous) or a non-const
//    reference, and every field can be initialized from `{}` (has a
//    default constructor that is not explicit, or is a scalar);
// and its fields are then seen through structured bindings. The count is
// the largest N for which T{any, ..., any} (N converts-to-anything
// arguments) compiles; T{{}, ..., {}} with exactly N empty braces (each one
// initializes exactly one element, so a C array member, which swallows one
// `any` per element, shows as a mismatch) must compile and N + 1 must not;
// T{base-only probe} must not compile (a base class is the first element);
// no field may take a union-only probe. Anything outside those rules is
// simply not reflected (never a compile error): give it a trace().
// Nested aggregates are followed up to kMaxReflectDepth levels (a type
// that contains itself through a vector, say, stops there).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "reflect_fields.hpp"

namespace weakref {
template <class T>
class Strong;
}  // namespace weakref

namespace weakref::gc {
class Visitor;
template <class X>
struct trace_traits;

// Specialize as false to keep a plain aggregate with Strong<> / weak members
// out of the collector (no automatic trace(), no collector link: 16 bytes
// less per object; cycles through it then leak, as with any untraced type).
template <class T>
inline constexpr bool auto_trace = true;
}  // namespace weakref::gc

namespace weakref::detail {

class WeakHandle;

template <class T>
struct is_strong : std::false_type {};
template <class T>
struct is_strong<Strong<T>> : std::true_type {};

template <class T>
concept HasMemberTrace = requires(T& t, gc::Visitor& v) {
  t.trace(v);
};
template <class T>
concept HasFreeTrace = requires(T& t, gc::Visitor& v) {
  trace(t, v);
};
template <class X>
concept has_trace_traits = requires(X& x, gc::Visitor& v) {
  gc::trace_traits<X>::trace(x, v);
};

template <class X>
struct is_optional : std::false_type {};
template <class X>
struct is_optional<std::optional<X>> : std::true_type {};
template <class X>
struct is_pairlike : std::false_type {};
template <class A, class B>
struct is_pairlike<std::pair<A, B>> : std::true_type {};
template <class... A>
struct is_pairlike<std::tuple<A...>> : std::true_type {};
template <class X>
struct is_variant : std::false_type {};
template <class... A>
struct is_variant<std::variant<A...>> : std::true_type {};
template <class X>
struct is_unique_ptr : std::false_type {};
template <class X, class D>
struct is_unique_ptr<std::unique_ptr<X, D>> : std::true_type {};

// ---------------------------------------------------------------------------
// Aggregate reflection.

// The probes below are only ever named in unevaluated requires-expressions.
// Their conversions are defined (as aborting) all the same: clang
// instantiates a constexpr constructor that such an expression names (a
// std::optional's, say) and then warns that a conversion of internal
// linkage (U from an anonymous namespace) is used but not defined.

// Converts to anything: counts the elements of T{...}. The lvalue form for
// copyable T (PFR's choice: fewer ambiguities), the prvalue form otherwise
// (move-only and immovable members).
struct any_lvalue {
  template <class U>
  [[noreturn]] operator U&() const noexcept {
    std::abort();
  }
};
struct any_prvalue {
  template <class U>
  [[noreturn]] operator U() const noexcept {
    std::abort();
  }
};
template <class T, std::size_t>
using any_for = std::conditional_t<std::is_copy_constructible_v<T>, any_lvalue, any_prvalue>;

// Converts only to the bases of T: T{base_probe<T>{}} compiles when T's
// first element is a base class.
template <class T>
struct base_probe {
  template <class U>
  requires(std::is_base_of_v<U, T> && !std::is_same_v<U, T>) [[noreturn]] operator U()
      const noexcept {
    std::abort();
  }
};
// Converts only to unions.
struct union_probe {
  template <class U>
  requires std::is_union_v<U>
  [[noreturn]] operator U() const noexcept { std::abort(); }
};
// Converts to nothing: an element that takes it takes anything (a catch-all
// constructor), so a probe it takes proves nothing.
struct no_probe {};

template <class T, std::size_t... I>
constexpr bool any_initializable(std::index_sequence<I...>) noexcept {
  return requires { T{any_for<T, I>{}...}; };
}

// The largest N <= kMaxReflectedFields + 1 for which T{any x N} compiles
// (binary search: for the types reflected, that is monotonic).
template <class T, std::size_t Lo = 0, std::size_t Hi = kMaxReflectedFields + 1>
constexpr std::size_t any_count() noexcept {
  if constexpr (Lo == Hi) {
    return Lo;
  } else {
    constexpr std::size_t mid = (Lo + Hi + 1) / 2;
    if constexpr (any_initializable<T>(std::make_index_sequence<mid>{}))
      return any_count<T, mid, Hi>();
    else
      return any_count<T, Lo, mid - 1>();
  }
}

template <class T, std::size_t... I>
constexpr bool union_at(std::index_sequence<I...>) noexcept {
  return requires { T{any_for<T, I>{}..., union_probe{}}; }
  &&!requires { T{any_for<T, I>{}..., no_probe{}}; };
}
template <class T, std::size_t... I>
constexpr bool has_union_field(std::index_sequence<I...>) noexcept {
  return (union_at<T>(std::make_index_sequence<I>{}) || ...);
}

inline constexpr std::size_t kNotReflected = static_cast<std::size_t>(-1);

// The number of fields of T when T is reflected (see the top), else
// kNotReflected.
template <class T>
constexpr std::size_t reflected_field_count() noexcept {
  if constexpr (!std::is_class_v<T> || std::is_union_v<T> || !std::is_aggregate_v<T>) {
    return kNotReflected;
  } else {
    constexpr std::size_t n = any_count<T>();
    if constexpr (n > kMaxReflectedFields)
      return kNotReflected;
    else if constexpr (
        requires { T{base_probe<T>{}}; } && !requires { T{no_probe{}}; })
      return kNotReflected;  // a base class
    else if constexpr (!brace_initializable<T, n>() || brace_initializable<T, n + 1>())
      return kNotReflected;  // a C array, a field not initializable from {}, ...
    else if constexpr (has_union_field<T>(std::make_index_sequence<n>{}))
      return kNotReflected;
    else
      return n;
  }
}

template <class T>
concept reflectable = reflected_field_count<T>()
!= kNotReflected;

// The field types of a reflectable T, as a std::tuple (as declared).
template <class T>
using field_types_t =
    typename decltype(field_types_of<reflected_field_count<T>()>(std::declval<T&>()))::type;

// ---------------------------------------------------------------------------
// Visitability.

inline constexpr int kMaxReflectDepth = 8;

template <class X, int Depth = 0>
constexpr bool visitable();

template <class Tuple, int Depth, std::size_t... I>
constexpr bool any_visitable(std::index_sequence<I...>) {
  return (visitable<std::remove_cv_t<std::tuple_element_t<I, Tuple>>, Depth>() || ...);
}
template <int Depth, class... A>
constexpr bool any_alternative_visitable(std::variant<A...>*) {
  return (visitable<A, Depth>() || ...);
}

// Whether X holds anything the collector must see (see the top).
template <class X, int Depth>
constexpr bool visitable() {
  using U = std::remove_cv_t<X>;
  if constexpr (std::is_reference_v<U>)
    return false;  // a reference member owns nothing
  else if constexpr (std::is_class_v<U> && !requires { sizeof(U); })
    return false;  // incomplete here (a std::vector<Node> member before Node is)
  else if constexpr (is_strong<U>::value || std::is_base_of_v<WeakHandle, U>)
    return true;
  else if constexpr (HasMemberTrace<U> || HasFreeTrace<U> || has_trace_traits<U>)
    return true;
  else if constexpr (is_optional<U>::value)
    return visitable<typename U::value_type, Depth>();
  else if constexpr (is_unique_ptr<U>::value)
    return visitable<typename U::element_type, Depth>();
  else if constexpr (is_pairlike<U>::value)
    return any_visitable<U, Depth>(std::make_index_sequence<std::tuple_size_v<U>>{});
  else if constexpr (is_variant<U>::value)
    return any_alternative_visitable<Depth>(static_cast<U*>(nullptr));
  else if constexpr (std::ranges::range<U>) {
    using V = std::remove_cv_t<std::ranges::range_value_t<U>>;
    if constexpr (std::is_same_v<V, U>)  // std::filesystem::path: a range of paths
      return false;
    else
      return visitable<V, Depth>();
  } else if constexpr (Depth < kMaxReflectDepth && reflectable<U>) {
    using Fields = field_types_t<U>;
    return any_visitable<Fields, Depth + 1>(std::make_index_sequence<std::tuple_size_v<Fields>>{});
  } else {
    return false;
  }
}

template <class X>
struct visitable_field : std::bool_constant<visitable<X>()> {};

// f(field) for each field of the reflectable t (const or not) that holds
// something the collector must see.
template <class T, class F>
requires reflectable<std::remove_const_t<T>>
constexpr void for_visitable_fields(T& t, F&& f) {
  for_fields_if<reflected_field_count<std::remove_const_t<T>>(), visitable_field>(
      t, std::forward<F>(f));
}

// A managed T traced without a trace() of its own (see the top).
template <class T>
concept auto_traced = !HasMemberTrace<T> && !HasFreeTrace<T> && gc::auto_trace<T> && visitable<T>();

}  // namespace weakref::detail
