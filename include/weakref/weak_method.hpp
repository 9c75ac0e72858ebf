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
#include <stdexcept>
#include <ostream>
#include <type_traits>
#include <utility>

#include "ref.hpp"

namespace weakref {

namespace detail {
template <class Pmf>
struct member_traits;
#define WEAKREF_MEMBER_TRAITS(CV, NOEXCEPT)                              \
  template <class C, class R, class... A>                                \
  struct member_traits<R (C::*)(A...) CV noexcept(NOEXCEPT)> {           \
    using object = CV C;                                                 \
    using result = R;                                                    \
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

template <class Pmf>
class WeakMethod : public detail::WeakHandle {
  using Traits = detail::member_traits<Pmf>;

 public:
  using object_type = typename Traits::object;
  using result_type = typename Traits::result;
  static_assert(detail::weakly_referenceable<object_type>,
                "weakref::WeakMethod: the object's type cannot be weakly referenced");

  // A bound method: the object (held strongly) and the member function.
  class BoundMethod {
   public:
    BoundMethod() = default;
    BoundMethod(Strong<object_type> obj, Pmf pmf) : obj_(std::move(obj)), pmf_(pmf) {}
    explicit operator bool() const noexcept { return static_cast<bool>(obj_); }
    template <class... Args>
    decltype(auto) operator()(Args&&... args) const {
      return std::invoke(pmf_, *obj_, std::forward<Args>(args)...);
    }
    const Strong<object_type>& object() const noexcept { return obj_; }
    Pmf function() const noexcept { return pmf_; }

   private:
    Strong<object_type> obj_;
    Pmf pmf_ = nullptr;
  };

  WeakMethod() noexcept = default;

  template <class U>
    requires std::is_convertible_v<U*, object_type*>
  WeakMethod(const Strong<U>& obj, Pmf pmf)
      : WeakHandle(detail::make_weak<WeakMethod, detail::WeakKind::method>(obj)),
        ptr_(obj.get()),
        pmf_(pmf) {
    check_pmf();
  }

  template <class U, class F>
    requires std::is_convertible_v<U*, object_type*> && detail::weak_callback<F, WeakMethod>
  WeakMethod(const Strong<U>& obj, Pmf pmf, F&& callback)
      : WeakHandle(detail::make_weak<WeakMethod, detail::WeakKind::method>(
            obj, std::forward<F>(callback))),
        ptr_(obj.get()),
        pmf_(pmf) {
    check_pmf();
  }
  template <class U>
    requires std::is_convertible_v<U*, object_type*>
  WeakMethod(const Strong<U>& obj, Pmf pmf, std::nullptr_t) : WeakMethod(obj, pmf) {}

  WeakMethod(const WeakMethod&) noexcept = default;
  WeakMethod(WeakMethod&&) noexcept = default;
  WeakMethod& operator=(const WeakMethod&) noexcept = default;
  WeakMethod& operator=(WeakMethod&&) noexcept = default;
  ~WeakMethod() = default;

  // Python's m(): the bound method, or an empty one when the object is dead.
  BoundMethod lock() const noexcept {
    if (!w_) return {};
    detail::SideTable* s = detail::weak_lock_side(w_);
    if (!s) return {};
    return BoundMethod(detail::StrongAccess::adopt(ptr_, s), pmf_);
  }

  // Calls the method if the object is alive (see the rules above).
  template <class... Args>
    requires std::is_invocable_v<Pmf, object_type&, Args...>
  detail::call_result_t<result_type> operator()(Args&&... args) const {
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

  bool expired() const noexcept { return !w_ || !detail::weak_alive(w_); }
  bool has_callback() const noexcept { return detail::weak_has_callback(w_); }
  Pmf function() const noexcept { return pmf_; }

  friend bool operator==(const WeakMethod& a, const WeakMethod& b) noexcept {
    if (a.w_ == b.w_) return true;
    if (!a.w_ || !b.w_) return false;
    return a.pmf_ == b.pmf_ && a.w_->side_table() == b.w_->side_table() &&
           detail::weak_alive(a.w_) && detail::weak_alive(b.w_);
  }

  friend std::ostream& operator<<(std::ostream& os, const WeakMethod& m) {
    detail::write_weak(os, m.w_);
    return os;
  }

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

// Class template argument deduction: `WeakMethod m(obj, &T::f)` is
// WeakMethod<decltype(&T::f)>, for a Strong obj of any value category.
template <class U, class Pmf>
WeakMethod(const Strong<U>&, Pmf) -> WeakMethod<Pmf>;
template <class U, class Pmf, class F>
WeakMethod(const Strong<U>&, Pmf, F&&) -> WeakMethod<Pmf>;

}  // namespace weakref

namespace std {
template <class Pmf>
struct hash<weakref::WeakMethod<Pmf>> {
  std::size_t operator()(const weakref::WeakMethod<Pmf>& m) const noexcept {
    auto* w = weakref::detail::HandleAccess::get(m);
    return w ? std::hash<std::uintptr_t>{}(weakref::detail::weak_identity(w)) : 0;
  }
};
}  // namespace std
