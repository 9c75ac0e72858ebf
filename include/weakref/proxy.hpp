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
//    Python proxy forwards ==) and throws ReferenceError when one is dead.
#pragma once

#include <functional>
#include <ostream>
#include <type_traits>
#include <utility>

#include "detail/type_traits.hpp"
#include "errors.hpp"
#include "ref.hpp"

namespace weakref {

template <class T>
class proxy : public detail::WeakHandle {
  static_assert(!std::is_void_v<T> && detail::weakly_referenceable<T>,
                "weakref::proxy<T>: T cannot be weakly referenced. Only class types made "
                "with weakref::make<T>() can be (as in Python, where int, str and tuple "
                "objects cannot be weakly referenced).");

 public:
  using element_type = T;

  proxy() noexcept = default;

  template <class U>
    requires std::is_convertible_v<U*, T*>
  proxy(const Strong<U>& obj)  // NOLINT: implicit, as ref
      : WeakHandle(detail::make_weak<proxy, detail::WeakKind::proxy>(obj)), ptr_(obj.get()) {}

  template <class U, class F>
    requires std::is_convertible_v<U*, T*> && detail::weak_callback<F, proxy<T>>
  proxy(const Strong<U>& obj, F&& callback)
      : WeakHandle(
            detail::make_weak<proxy, detail::WeakKind::proxy>(obj, std::forward<F>(callback))),
        ptr_(obj.get()) {}
  template <class U>
    requires std::is_convertible_v<U*, T*>
  proxy(const Strong<U>& obj, std::nullptr_t) : proxy(obj) {}

  template <class U>
    requires(!detail::is_strong<std::remove_cvref_t<U>>::value &&
             !detail::weak_handle_type<U>)
  proxy(U&&) {  // NOLINT
    static_assert(detail::dependent_false<U>,
                  "weakref::proxy<T> must be made from a weakref::Strong<T> (an object "
                  "created by weakref::make<T>()): raw pointers, references, values and "
                  "std::shared_ptr cannot be weakly referenced");
  }

  proxy(const proxy&) noexcept = default;
  proxy(proxy&&) noexcept = default;
  proxy& operator=(const proxy&) noexcept = default;
  proxy& operator=(proxy&&) noexcept = default;
  ~proxy() = default;

  // The referent, or null (no exception) when it is dead.
  Strong<T> lock() const noexcept {
    if (!w_) return {};
    detail::SideTable* s = detail::weak_lock_side(w_);
    if (!s) return {};
    return detail::StrongAccess::adopt(ptr_, s);
  }
  // The referent; throws ReferenceError when it is dead.
  Strong<T> get() const {
    Strong<T> s = lock();
    if (!s) throw ReferenceError();
    return s;
  }
  bool expired() const noexcept { return !w_ || !detail::weak_alive(w_); }
  bool has_callback() const noexcept { return detail::weak_has_callback(w_); }

  Strong<T> operator->() const { return get(); }
  T& operator*() const { return *get(); }

  template <class... Args>
    requires std::is_invocable_v<T&, Args...>
  decltype(auto) operator()(Args&&... args) const {
    Strong<T> s = get();
    return std::invoke(*s, std::forward<Args>(args)...);
  }
  template <class I>
  decltype(auto) operator[](I&& i) const
    requires requires(T& t, I&& k) { t[std::forward<I>(k)]; }
  {
    Strong<T> s = get();
    return (*s)[std::forward<I>(i)];
  }

  // The referent's truth (T's conversion to bool), as a Python proxy
  // forwards bool(); throws ReferenceError when it is dead. Only for a T that
  // converts to bool: to test liveness, use expired() or lock().
  explicit operator bool() const
    requires std::is_constructible_v<bool, T&>
  {
    Strong<T> s = get();
    return static_cast<bool>(*s);
  }

  // Compares the referents (T's ==), as a Python proxy forwards ==.
  template <class U>
    requires std::equality_comparable_with<const T&, const U&>
  friend bool operator==(const proxy& a, const proxy<U>& b) {
    return *a.get() == *b.get();
  }

  friend std::ostream& operator<<(std::ostream& os, const proxy& p) {
    detail::write_weak(os, p.w_);
    return os;
  }

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

// Class template argument deduction: proxy<T> from a Strong<T> of any value
// category (one guide per category, as ref's).
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

}  // namespace weakref

// Proxies are unhashable, as in CPython.
namespace std {
template <class T>
struct hash<weakref::proxy<T>> {
  hash() = delete;
};
}  // namespace std
