// weakref::proxy<T>: Python's weakref.proxy, a weak reference used like the
// object itself.
//
//     weakref::proxy<Resource> p(res);
//     p->use();            // keeps res alive for the call
//     res.reset();
//     p->use();            // throws weakref::ReferenceError:
//                          //   "weakly-referenced object no longer exists"
//
// Lifetime rules
//  * Like ref<T>: a handle to a weakref object; basic (callback-less) proxies
//    are reused, a proxy with a callback is a new weakref object (a null
//    callback is none, as ref<T>'s); callbacks receive the dead proxy and
//    follow ref<T>'s rules.
//  * p->member: the arrow returns a temporary Strong<T>, so the object stays
//    alive until the end of the full expression, even if another thread
//    drops the last other reference meanwhile.
//  * *p returns T& and does not keep the object alive: the reference is good
//    only while some strong reference exists. Prefer p-> or p.lock().
//  * A proxy is not hashable (CPython raises TypeError): std::hash<proxy<T>>
//    is disabled. Use .is() for identity; == compares the referents (as a
//    Python proxy forwards ==: with another proxy, a Strong's object, or any
//    value T compares with) and throws ReferenceError when one is dead.
#pragma once

#include <concepts>
#include <functional>
#include <ostream>
#include <type_traits>
#include <utility>

#include "detail/type_traits.hpp"
#include "errors.hpp"
#include "ref.hpp"

namespace weakref {

namespace detail {
// What `proxy<T> == x` hands to T's own ==: an x that is neither a weakref
// handle nor a Strong (those have their own overloads).
template <class T, class U>
concept proxy_operand =
    !weak_handle_type<U> && !is_strong<U>::value && requires(const T& t, const U& u) {
  { t == u } -> std::convertible_to<bool>;
};
}  // namespace detail

/// A weak reference used like the object itself: Python's `weakref.proxy`.
///
/// `p->member` locks the referent for the full expression and throws
/// ReferenceError ("weakly-referenced object no longer exists") once it is
/// dead; `*p` gives a T& that does not keep it alive. Like ref<T>, a handle
/// to a weakref object (`p.is(q)`: the same one): basic proxies are reused,
/// one with a callback is a new weakref object. Not hashable (CPython raises
/// TypeError); == compares the referents. Threads: as ref<T>. The header
/// comment of proxy.hpp has the lifetime rules.
/// @tparam T the referent's class type (not void; weakly referenceable).
template <class T>
class proxy : public detail::WeakHandle {
  static_assert(!std::is_void_v<T> && detail::weakly_referenceable<T>,
                "weakref::proxy<T>: T cannot be weakly referenced. Only class types made "
                "with weakref::make<T>() can be (as in Python, where int, str and tuple "
                "objects cannot be weakly referenced).");

 public:
  using element_type = T;  ///< the referent's type

  /// An empty handle: every use but lock()/expired() throws ReferenceError.
  proxy() noexcept = default;

  /// `weakref.proxy(obj)`: the basic proxy of obj, reused when it exists.
  /// Throws std::invalid_argument for a null obj, std::bad_alloc.
  template <class U>
  requires std::is_convertible_v<U*, T*> proxy(const Strong<U>& obj)  // NOLINT: implicit, as ref
      : WeakHandle(detail::make_weak<proxy, detail::WeakKind::proxy>(obj)), ptr_(obj.get()) {}

  /// `weakref.proxy(obj, callback)`: a new weakref object whose
  /// `callback(proxy<T>)` (or `callback()`) runs when obj dies, with ref<T>'s
  /// rules; a null callback makes the basic proxy. Throws as proxy(obj).
  template <class U, class F>
  requires std::is_convertible_v<U*, T*> && detail::weak_callback<F, proxy<T>> proxy(
      const Strong<U>& obj, F&& callback)
      : WeakHandle(
            detail::make_weak<proxy, detail::WeakKind::proxy>(obj, std::forward<F>(callback))),
        ptr_(obj.get()) {}
  /// `weakref.proxy(obj, None)`: the same as proxy(obj).
  template <class U>
  requires std::is_convertible_v<U*, T*> proxy(const Strong<U>& obj, std::nullptr_t) : proxy(obj) {}
  /// A callback that cannot be called as `callback(proxy<T>)` or
  /// `callback()` fails to compile, with a message saying what it receives.
  template <class U, class F>
  requires std::is_convertible_v<U*, T*> && detail::wrong_weak_callback<F, proxy<T>> proxy(
      const Strong<U>&, F&&) {
    static_assert(detail::dependent_false<F>,
                  "weakref::proxy: the callback must be callable as "
                  "callback(weakref::proxy<T>) (it receives the dead proxy, as in Python, "
                  "never the object) or as callback()");
  }

  /// Anything but a Strong fails to compile, with a message saying why.
  template <class U>
  requires(!detail::is_strong<std::remove_cvref_t<U>>::value && !detail::weak_handle_type<U>)
      proxy(U&&) {  // NOLINT
    static_assert(detail::dependent_false<U>,
                  "weakref::proxy<T> must be made from a weakref::Strong<T> (an object "
                  "created by weakref::make<T>()): raw pointers, references, values and "
                  "std::shared_ptr cannot be weakly referenced");
  }

  /// Copies and moves: a copy is a handle to the same weakref object; a
  /// moved-from handle is empty. Never throw.
  ///@{
  proxy(const proxy&) noexcept = default;
  proxy(proxy&&) noexcept = default;
  proxy& operator=(const proxy&) noexcept = default;
  proxy& operator=(proxy&&) noexcept = default;
  ///@}
  /// Releases the handle's reference to the weakref object.
  [[gnu::always_inline]] ~proxy() = default;

  /// The referent, or null (no exception) when it is dead.
  Strong<T> lock() const noexcept {
    if (!w_) return {};
    detail::SideTable* s = detail::weak_lock_side(w_);
    if (!s) return {};
    return detail::StrongAccess::adopt(ptr_, s);
  }
  /// The referent; throws ReferenceError when it is dead (or the handle is
  /// empty).
  Strong<T> get() const {
    Strong<T> s = lock();
    if (!s) throw ReferenceError();
    return s;
  }
  /// Whether the referent is dead (or the handle empty).
  bool expired() const noexcept { return !w_ || !detail::weak_alive(w_); }
  /// Whether the proxy still has its callback (ref::has_callback()).
  bool has_callback() const noexcept { return detail::weak_has_callback(w_); }

  /// `p->member`: the referent, held by the returned temporary until the
  /// end of the full expression. Throws ReferenceError when it is dead.
  Strong<T> operator->() const { return get(); }
  /// `*p`: the referent; the reference does not keep it alive (good only
  /// while some strong reference exists). Throws ReferenceError when dead.
  T& operator*() const { return *get(); }

  /// `p(args...)`: calls the referent (Python's proxy forwards `__call__`),
  /// held for the call. Throws ReferenceError when it is dead, and what the
  /// call throws.
  template <class... Args>
  requires std::is_invocable_v<T&, Args...>
  decltype(auto) operator()(Args&&... args) const {
    Strong<T> s = get();
    return std::invoke(*s, std::forward<Args>(args)...);
  }
  /// `p[i]`: the referent's subscript (Python's proxy forwards
  /// `__getitem__`). Throws ReferenceError when it is dead. The result may
  /// refer into the referent, which the expression does not keep alive past
  /// the call.
  template <class I>
  decltype(auto) operator[](I&& i) const requires requires(T& t, I&& k) {
    t[std::forward<I>(k)];
  }
  {
    Strong<T> s = get();
    return (*s)[std::forward<I>(i)];
  }

  /// The referent's truth (T's conversion to bool), as a Python proxy
  /// forwards bool(); throws ReferenceError when it is dead. Only for a T that
  /// converts to bool: to test liveness, use expired() or lock().
  explicit operator bool() const requires std::is_constructible_v<bool, T&> {
    Strong<T> s = get();
    return static_cast<bool>(*s);
  }

  /// `p == q`: compares the referents (T's ==), as a Python proxy forwards
  /// ==; throws ReferenceError when either is dead.
  template <class U>
  requires std::equality_comparable_with<const T&, const U&>
  friend bool operator==(const proxy& a, const proxy<U>& b) { return *a.get() == *b.get(); }
  /// `p == obj`: the referent compared with obj's object (T's ==), as Python's
  /// `proxy == obj`; false for a null obj. Throws ReferenceError when the
  /// referent is dead. (No proxy is made for obj.)
  template <class P, class U>
  requires std::same_as<P, proxy> && std::equality_comparable_with<const T&, const U&>
  friend bool operator==(const P& a, const Strong<U>& b) {
    const Strong<T> s = a.get();
    return b && *s == *b;
  }
  /// `p == x`, for an x that is neither a handle nor a Strong: the referent
  /// compared with x by T's own ==, as a Python proxy forwards `__eq__` (so
  /// `p == 42` for a T comparable with int). Throws ReferenceError when the
  /// referent is dead. `x == p` and `!=` are the same comparison (C++20).
  /// (P is this proxy type, named so that the constraint is never looked at
  /// for a left operand that is not a proxy: ADL finds this friend through
  /// any type that merely mentions proxy<T>, such as a std::variant.)
  template <class P, class U>
  requires std::same_as<P, proxy> && detail::proxy_operand<T, U>
  friend bool operator==(const P& a, const U& x) {
    const Strong<T> s = a.get();
    return static_cast<bool>(*s == x);
  }

  /// CPython's repr: `<weakproxy at 0x... to Type at 0x...>`, or
  /// `<weakproxy at 0x...; dead>`.
  friend std::ostream& operator<<(std::ostream& os, const proxy& p) {
    detail::write_weak(os, p.w_);
    return os;
  }

  /// For the library (callbacks): a handle that adopts one reference to the
  /// weakref object w. Not for users.
  static proxy adopt_weak_object(detail::WeakObject* w, T* p = nullptr) noexcept {
    proxy r;
    r.w_ = w;
    r.ptr_ = p;
    return r;
  }

 private:
  friend struct detail::HandleAccess;

  T* ptr_ = nullptr;
};

/// Class template argument deduction: proxy<T> from a Strong<T> of any value
/// category (one guide per category, as ref's).
///@{
template <class U>
proxy(Strong<U>&) -> proxy<U>;
template <class U>
proxy(const Strong<U>&) -> proxy<U>;
template <class U>
proxy(Strong<U>&&) -> proxy<U>;
template <class U, class F>
proxy(Strong<U>&, F&&) -> proxy<U>;
template <class U, class F>
proxy(const Strong<U>&, F&&) -> proxy<U>;
template <class U>
proxy(const Strong<U>&, std::nullptr_t) -> proxy<U>;
template <class U, class F>
proxy(Strong<U>&&, F&&) -> proxy<U>;
///@}

}  // namespace weakref

namespace std {
/// Proxies are unhashable, as in CPython (TypeError there): this
/// specialization is disabled, so hashing a proxy does not compile.
template <class T>
struct hash<weakref::proxy<T>> {
  hash() = delete;  ///< disabled
};
}  // namespace std
