// weakref::WeakMethod: Python's weakref.WeakMethod, a weak bound member
// function. It holds the object weakly and the member function pointer.
//
//     weakref::WeakMethod on_click(button, &Button::clicked);
//     on_click(x, y);                 // calls button->clicked(x, y) if alive
//     if (auto m = on_click.lock())   // Python's m(): the bound method
//       m(x, y);
//
// Lifetime rules
//  * Like ref<T>: a handle to a weakref object of its own (never reused; each
//    WeakMethod counts in getweakrefcount), with an optional callback that
//    receives the dead WeakMethod (a null callback is none, as ref<T>'s).
//  * Calling through a WeakMethod whose object is dead calls nothing and
//    returns an empty result: std::optional<R> is empty, or false when the
//    method returns void. The object is kept alive for the call.
//  * Equality: same object and same member function while both are alive,
//    identity otherwise (CPython). std::hash is by object identity.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "ref.hpp"

namespace weakref {

namespace detail {
template <class Pmf>
struct member_traits;
#define WEAKREF_MEMBER_TRAITS(CV, NOEXCEPT)                    \
  template <class C, class R, class... A>                      \
  struct member_traits<R (C::*)(A...) CV noexcept(NOEXCEPT)> { \
    using object = CV C;                                       \
    using result = R;                                          \
  };
WEAKREF_MEMBER_TRAITS(, false)
WEAKREF_MEMBER_TRAITS(const, false)
WEAKREF_MEMBER_TRAITS(, true)
WEAKREF_MEMBER_TRAITS(const, true)
#undef WEAKREF_MEMBER_TRAITS

template <class R>
using call_result_t = std::conditional_t<
    std::is_void_v<R>, bool,
    std::optional<std::conditional_t<std::is_reference_v<R>,
                                     std::reference_wrapper<std::remove_reference_t<R>>, R>>>;
}  // namespace detail

/// A weak bound member function: Python's `weakref.WeakMethod`. Holds the
/// object weakly and the member function pointer.
///
/// Calling it calls the method when the object is alive (kept alive for the
/// call) and nothing otherwise: the result is std::optional<R>, or bool for
/// a void method. Each WeakMethod is a weakref object of its own (never
/// reused), with an optional callback that receives the dead WeakMethod.
/// Equality: same object and same member function while both are alive,
/// identity otherwise (CPython); std::hash is by object identity. Threads:
/// as ref<T>. `m.is(n)`: the same weakref object.
/// @tparam Pmf a pointer to a member function of a weakly referenceable
///             class.
template <class Pmf>
class WeakMethod : public detail::WeakHandle {
  static_assert(std::is_member_function_pointer_v<Pmf>,
                "weakref::WeakMethod binds a pointer to a member function (&T::f); for a "
                "free function or a lambda, use a ref with a callback, or a finalize");
  using Traits = detail::member_traits<Pmf>;

 public:
  using object_type = typename Traits::object;  ///< the class of Pmf
  using result_type = typename Traits::result;  ///< what Pmf returns
  static_assert(detail::weakly_referenceable<object_type>,
                "weakref::WeakMethod: the object's type cannot be weakly referenced");

  /// A bound method (Python's bound method object): the object, held
  /// strongly, and the member function.
  class BoundMethod {
   public:
    /// An empty one (what lock() gives when the object is dead).
    BoundMethod() = default;
    /// obj's method pmf.
    BoundMethod(Strong<object_type> obj, Pmf pmf) : obj_(std::move(obj)), pmf_(pmf) {}
    /// Whether it holds an object (Python: the bound method is not None).
    explicit operator bool() const noexcept { return static_cast<bool>(obj_); }
    /// Calls the method on the object. Precondition: not empty.
    template <class... Args>
    decltype(auto) operator()(Args&&... args) const {
      return std::invoke(pmf_, *obj_, std::forward<Args>(args)...);
    }
    /// The object (Python's `__self__`).
    const Strong<object_type>& object() const noexcept { return obj_; }
    /// The member function (Python's `__func__`).
    Pmf function() const noexcept { return pmf_; }
    /// Python's bound-method `==`: the same object (identity) and the same
    /// member function, so `m.lock() == bound_method(obj, &T::f)` is
    /// `m() == obj.f` (how a signal finds the slot to disconnect). Two empty
    /// ones are equal (`None == None`).
    friend bool operator==(const BoundMethod& a, const BoundMethod& b) noexcept {
      return a.obj_ == b.obj_ && (!a.obj_ || a.pmf_ == b.pmf_);
    }

   private:
    Strong<object_type> obj_;
    Pmf pmf_ = nullptr;
  };

  /// An empty handle: calling it calls nothing.
  WeakMethod() noexcept = default;

  /// `weakref.WeakMethod(obj.method)`: obj's method pmf, obj held weakly.
  /// Throws std::invalid_argument for a null obj or a null pmf (CPython's
  /// TypeError), std::bad_alloc.
  template <class U>
  requires std::is_convertible_v<U*, object_type*> WeakMethod(const Strong<U>& obj, Pmf pmf)
      : WeakHandle(detail::make_weak<WeakMethod, detail::WeakKind::method>(obj)),
        ptr_(obj.get()),
        pmf_(pmf) {
    check_pmf();
  }

  /// `weakref.WeakMethod(obj.method, callback)`: `callback(WeakMethod)` (or
  /// `callback()`) runs when obj dies, with ref<T>'s rules; a null callback
  /// is none. Throws as WeakMethod(obj, pmf).
  template <class U, class F>
  requires std::is_convertible_v<U*, object_type*> && detail::weak_callback<F, WeakMethod>
  WeakMethod(const Strong<U>& obj, Pmf pmf, F&& callback)
      : WeakHandle(detail::make_weak<WeakMethod, detail::WeakKind::method>(
            obj, std::forward<F>(callback))),
        ptr_(obj.get()),
        pmf_(pmf) {
    check_pmf();
  }
  /// With a None callback: the same as WeakMethod(obj, pmf).
  template <class U>
  requires std::is_convertible_v<U*, object_type*> WeakMethod(const Strong<U>& obj, Pmf pmf,
                                                              std::nullptr_t)
      : WeakMethod(obj, pmf) {}

  /// Mistakes fail to compile with a message saying what is expected: an
  /// object that is not of pmf's class (or of a class derived from it),
  /// and a callback that cannot be called as `callback(WeakMethod)` or
  /// `callback()`.
  ///@{
  template <class U, class... F>
  requires(!std::is_convertible_v<U*, object_type*> && sizeof...(F) <= 1)
      WeakMethod(const Strong<U>&, Pmf, F&&...) {
    static_assert(detail::dependent_false<U>,
                  "weakref::WeakMethod(obj, &T::f): obj must be a Strong to a T (or to a "
                  "class derived from T), the class of the member function");
  }
  template <class U, class F>
  requires std::is_convertible_v<U*, object_type*> && detail::wrong_weak_callback<F, WeakMethod>
  WeakMethod(const Strong<U>&, Pmf, F&&) {
    static_assert(detail::dependent_false<F>,
                  "weakref::WeakMethod: the callback must be callable as "
                  "callback(weakref::WeakMethod<Pmf>) (it receives the dead WeakMethod, as in "
                  "Python, never the object) or as callback()");
  }
  ///@}

  /// Copies and moves: a copy is a handle to the same weakref object; a
  /// moved-from handle is empty. Never throw.
  ///@{
  WeakMethod(const WeakMethod&) noexcept = default;
  WeakMethod(WeakMethod&&) noexcept = default;
  WeakMethod& operator=(const WeakMethod&) noexcept = default;
  WeakMethod& operator=(WeakMethod&&) noexcept = default;
  ///@}
  /// Releases the handle's reference to the weakref object.
  [[gnu::always_inline]] ~WeakMethod() = default;

  /// Python's `m()`: the bound method, or an empty one when the object is
  /// dead.
  BoundMethod lock() const noexcept {
    if (!w_) return {};
    detail::SideTable* s = detail::weak_lock_side(w_);
    if (!s) return {};
    return BoundMethod(detail::StrongAccess::adopt(ptr_, s), pmf_);
  }

  /// Calls the method if the object is alive, keeping it alive for the call:
  /// std::optional<R> (empty when dead), or for a void method whether it was
  /// called. Throws what the method throws.
  template <class... Args>
  requires std::is_invocable_v<Pmf, object_type&, Args...> detail::call_result_t<result_type>
  operator()(Args&&... args) const {
    BoundMethod m = lock();
    if constexpr (std::is_void_v<result_type>) {
      if (!m) return false;
      m(std::forward<Args>(args)...);
      return true;
    } else {
      if (!m) return std::nullopt;
      return m(std::forward<Args>(args)...);
    }
  }

  /// Whether the object is dead (or the handle empty).
  bool expired() const noexcept { return !w_ || !detail::weak_alive(w_); }
  /// Whether it still has its callback (ref::has_callback()).
  bool has_callback() const noexcept { return detail::weak_has_callback(w_); }
  /// The member function (null for an empty handle).
  Pmf function() const noexcept { return pmf_; }

  /// CPython's WeakMethod `==`: same object and same function while both are
  /// alive, identity of the weakref objects otherwise.
  friend bool operator==(const WeakMethod& a, const WeakMethod& b) noexcept {
    if (a.w_ == b.w_) return true;
    if (!a.w_ || !b.w_) return false;
    return a.pmf_ == b.pmf_ && a.w_->side_table() == b.w_->side_table() &&
           detail::weak_alive(a.w_) && detail::weak_alive(b.w_);
  }

  /// CPython's repr of the weakref: `<weakref at 0x...; to 'Type' at 0x...>`
  /// or `<weakref at 0x...; dead>`.
  friend std::ostream& operator<<(std::ostream& os, const WeakMethod& m) {
    detail::write_weak(os, m.w_);
    return os;
  }

  /// For the library (callbacks): a handle that adopts one reference to the
  /// weakref object w. Not for users.
  static WeakMethod adopt_weak_object(detail::WeakObject* w) noexcept {
    WeakMethod m;
    m.w_ = w;
    return m;
  }

 private:
  friend struct detail::HandleAccess;

  void check_pmf() const {
    if (!pmf_) throw std::invalid_argument("weakref::WeakMethod: null member function");
  }

  object_type* ptr_ = nullptr;
  Pmf pmf_ = nullptr;
};

/// Class template argument deduction: `WeakMethod m(obj, &T::f)` is
/// WeakMethod<decltype(&T::f)>, for a Strong obj of any value category.
///@{
template <class U, class Pmf>
WeakMethod(const Strong<U>&, Pmf) -> WeakMethod<Pmf>;
template <class U, class Pmf, class F>
WeakMethod(const Strong<U>&, Pmf, F&&) -> WeakMethod<Pmf>;
///@}

/// Python's bound method `obj.f`: `bound_method(obj, &T::f)` is
/// `WeakMethod<decltype(&T::f)>::BoundMethod(obj, &T::f)`, what `m.lock()`
/// compares with (`m() == obj.f`: how a signal finds the slot to
/// disconnect). obj may be a Strong to a class derived from T.
template <class U, class Pmf>
requires std::is_member_function_pointer_v<Pmf>
typename WeakMethod<Pmf>::BoundMethod bound_method(Strong<U> obj, Pmf pmf) {
  return typename WeakMethod<Pmf>::BoundMethod(std::move(obj), pmf);
}

}  // namespace weakref

namespace std {
/// Hash of a WeakMethod: by object identity, stable after its death; 0 for
/// an empty handle.
template <class Pmf>
struct hash<weakref::WeakMethod<Pmf>> {
  /// The hash of m.
  std::size_t operator()(const weakref::WeakMethod<Pmf>& m) const noexcept {
    auto* w = weakref::detail::HandleAccess::get(m);
    return w ? std::hash<std::uintptr_t>{}(weakref::detail::weak_identity(w)) : 0;
  }
};
}  // namespace std
