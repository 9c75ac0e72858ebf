// weakref::ref<T>: Python's weakref.ref.
//
//     weakref::ref<Node> r(node);                 // basic ref (reused)
//     weakref::ref<Node> r2(node, [](weakref::ref<Node> dead) { ... });
//     if (weakref::Strong<Node> n = r()) ...      // null once node is dead
//
// Lifetime rules
//  * A ref<T> is a handle to a weakref object; copies are the same weakref
//    object (r1.is(r2)). The weakref object lives while any handle (or the
//    library: a pending callback) holds it, independently of its referent.
//  * Without a callback, an existing basic ref to the same object is reused,
//    as in CPython; with a callback, every ref is a new weakref object. A
//    null callback (nullptr, a null function pointer, an empty std::function)
//    is no callback, as Python's None.
//  * has_callback() is CPython's `__callback__ is not None`: false once the
//    weakref has been cleared (its referent died or was collected), also
//    while its callback runs.
//  * When the referent dies, every weakref to it is cleared before the first
//    callback runs; callbacks run newest first, on the thread that released
//    the last strong reference, each with a handle to its (dead) weakref. A
//    callback whose weakref object was released before the death never runs.
//    An exception thrown by a callback goes to the unraisable hook
//    (weakref/unraisable.hpp) and the other callbacks still run.
//  * Callbacks may make and drop objects and weakrefs, and may collect.
//  * Threads: r() may race with the release of the last strong reference on
//    another thread; it then returns either a live object (which it keeps
//    alive) or null. Distinct handles may be used on any threads.
//  * A default-constructed ref is an empty handle: r() is null, it is no
//    weakref object and nothing can call back.
//
// Equality (==): equal referents while both are alive, identity otherwise
// (CPython); a ref does not compare with a Strong. std::hash is by referent
// identity and stays stable after death (CPython raises TypeError when
// hashing a dead ref never hashed before).
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "detail/type_traits.hpp"
#include "detail/weak_object.hpp"
#include "strong.hpp"

namespace weakref {

/// Specialize as `false` for a class type whose objects must never be
/// weakly referenced (Python: a class with `__slots__` and no `__weakref__`):
/// ref, proxy, WeakMethod, finalize and the weak containers then fail to
/// compile for it, with a message saying so.
template <class T>
inline constexpr bool enable_weakref = true;

namespace detail {
template <class T>
concept weakly_referenceable = std::is_void_v<T> ||
    (std::is_class_v<std::remove_cv_t<T>>&& enable_weakref<std::remove_cv_t<T>>);

template <class T>
concept weak_handle_type = std::is_base_of_v<WeakHandle, std::remove_cvref_t<T>>;

[[noreturn]] WEAKREF_API void throw_null_referent();

template <class F>
struct is_std_function : std::false_type {};
template <class S>
struct is_std_function<std::function<S>> : std::true_type {};

// Python's callback=None: a null function pointer or an empty std::function
// given as a callback means no callback.
template <class F>
bool is_null_callback(const F& f) noexcept {
  using D = std::remove_cvref_t<F>;
  if constexpr (std::is_pointer_v<D> || is_std_function<D>::value)
    return !f;
  else
    return false;
}

// What a handle of type Handle accepts as a callback: f(handle) or f().
// The handle is passed as a const lvalue when f takes one (a const
// reference, or a generic `auto&` parameter), else as an rvalue
// (CallbackWeakObject::invoke, QueuedCallbackWeak::run).
template <class F, class Handle>
concept weak_callback = std::is_invocable_v < std::decay_t<F>
&, const Handle& > || std::is_invocable_v<std::decay_t<F>&, Handle> ||
       std::is_invocable_v<std::decay_t<F>&>;
// What a handle's constructor rejects with a message as its callback
// argument: neither a callback for Handle nor nullptr (`ref(obj, None)`).
template <class F, class Handle>
concept wrong_weak_callback = !weak_callback<F, Handle> && !std::is_null_pointer_v<std::decay_t<F>>;

// The one construction path of ref, proxy and WeakMethod: the weakref
// object of a new Handle to obj, of kind Kind, with one reference for the
// handle. Without a callback (or with a null one, Python's None), a ref or a
// proxy is obj's basic one, reused or made (a ref's is taken inline when it
// exists: basic_ref); a WeakMethod, and any handle with a callback, gets a
// weakref object of its own, linked newest first.
template <class Handle, WeakKind Kind, class U>
[[gnu::always_inline]] inline WeakObject* make_weak(const Strong<U>& obj) {
  ObjectHeader* h = StrongAccess::header(obj);
  if (!h) [[unlikely]]
    throw_null_referent();
  if constexpr (Kind == WeakKind::ref)
    return basic_ref(h);
  else if constexpr (Kind == WeakKind::proxy)
    return basic_weak(h, Kind);
  else
    return make_attached<WeakObject>(h, Kind, false);
}
template <class Handle, WeakKind Kind, class U, class F>
WeakObject* make_weak(const Strong<U>& obj, F&& callback) {
  if (is_null_callback(callback)) return make_weak<Handle, Kind>(obj);
  ObjectHeader* h = StrongAccess::header(obj);
  if (!h) [[unlikely]]
    throw_null_referent();
  return make_attached<CallbackWeakObject<Handle, std::decay_t<F>>>(h, Kind,
                                                                    std::forward<F>(callback));
}

// CPython clears __callback__ when it clears the weakref (before running it).
inline bool weak_has_callback(const WeakObject* w) noexcept {
  return w && w->has_callback && !(w->side.load(std::memory_order_acquire) & 1);
}

template <class T>
T* referent_pointer(T* p, ObjectHeader* h) noexcept {
  if constexpr (std::is_void_v<T>)
    return p ? p : h->object();
  else
    return p;
}
}  // namespace detail

/// A weak reference to an object made by make<T>(): Python's `weakref.ref`.
///
/// A handle to a weakref object; copies are the same weakref object
/// (`r1.is(r2)`, inherited: identity of the weakref objects). Calling it
/// gives the referent as a Strong<T>, or null once the referent is dead.
/// Without a callback the referent's basic ref is reused, as in CPython.
/// Equality: equal referents while both are alive, identity otherwise;
/// std::hash is by referent identity and stays stable after death.
/// Threads: distinct handles may be used on any threads; `r()` may race with
/// the release of the last strong reference elsewhere, and then returns
/// either a live object (kept alive) or null. The header comment of
/// ref.hpp has the lifetime and callback rules.
/// @tparam T the referent's type, or `void` for a type-erased handle (what
///           getweakrefs() returns). T must be weakly referenceable
///           (enable_weakref), else the class does not compile.
template <class T = void>
class ref : public detail::WeakHandle {
  static_assert(detail::weakly_referenceable<T>,
                "weakref::ref<T>: T cannot be weakly referenced. Only class types made "
                "with weakref::make<T>() can be (as in Python, where int, str and tuple "
                "objects cannot be weakly referenced); a class opts out with "
                "weakref::enable_weakref<T> = false.");

 public:
  using element_type = T;  ///< the referent's type

  /// An empty handle: `r()` is null, it is no weakref object and nothing
  /// calls back.
  ref() noexcept = default;

  /// `weakref.ref(obj)`: the basic ref of obj, reused when it exists
  /// (no allocation then). Throws std::invalid_argument for a null obj
  /// (CPython's TypeError: "cannot create weak reference to 'NoneType'
  /// object") and std::bad_alloc.
  template <class U>
  requires std::is_convertible_v<U*, T*>
  [[gnu::always_inline]] ref(const Strong<U>& obj)  // NOLINT: implicit, as weak_ptr's
      : WeakHandle(detail::make_weak<ref, detail::WeakKind::ref>(obj)), ptr_(obj.get()) {}

  /// `weakref.ref(obj, callback)`: a new weakref object whose
  /// `callback(ref<T>)` (or `callback()`) runs when obj dies, unless this
  /// weakref object is gone by then. It runs on the thread that released
  /// obj's last strong reference, after every weakref to obj was cleared;
  /// an exception it throws goes to the unraisable hook. A null callback
  /// (nullptr, a null function pointer, an empty std::function: Python's
  /// None) makes the basic ref, as ref(obj). The callback is destroyed once
  /// it has run, releasing what it captured. Throws as ref(obj).
  template <class U, class F>
  requires std::is_convertible_v<U*, T*> && detail::weak_callback<F, ref<T>> ref(
      const Strong<U>& obj, F&& callback)
      : WeakHandle(detail::make_weak<ref, detail::WeakKind::ref>(obj, std::forward<F>(callback))),
        ptr_(obj.get()) {}
  /// `weakref.ref(obj, None)`: the same as ref(obj).
  template <class U>
  requires std::is_convertible_v<U*, T*> ref(const Strong<U>& obj, std::nullptr_t) : ref(obj) {}
  /// A callback that cannot be called as `callback(ref<T>)` or `callback()`
  /// (one taking the object, say) fails to compile, with a message saying
  /// what a callback receives.
  template <class U, class F>
  requires std::is_convertible_v<U*, T*> && detail::wrong_weak_callback<F, ref<T>> ref(
      const Strong<U>&, F&&) {
    static_assert(detail::dependent_false<F>,
                  "weakref::ref: the callback must be callable as callback(weakref::ref<T>) "
                  "(it receives the dead weakref, as in Python, never the object) or as "
                  "callback()");
  }

  /// Anything else is not weakly referenceable: a raw pointer, a reference,
  /// a value or a std::shared_ptr fails to compile, with a message saying
  /// so (CPython's TypeError "cannot create weak reference to ...").
  ///@{
  template <class U>
  requires(!detail::is_strong<std::remove_cvref_t<U>>::value && !detail::weak_handle_type<U>)
      ref(U&&) {  // NOLINT
    static_assert(detail::dependent_false<U>,
                  "weakref::ref<T> must be made from a weakref::Strong<T> (an object "
                  "created by weakref::make<T>()): raw pointers, references, values and "
                  "std::shared_ptr cannot be weakly referenced");
  }
  template <class U, class F>
  requires(!detail::is_strong<std::remove_cvref_t<U>>::value) ref(U&&, F&&) {
    static_assert(detail::dependent_false<U>,
                  "weakref::ref<T> must be made from a weakref::Strong<T> (an object "
                  "created by weakref::make<T>()): raw pointers, references, values and "
                  "std::shared_ptr cannot be weakly referenced");
  }
  ///@}

  /// Copies and moves: a copy is a handle to the same weakref object (one
  /// more reference to it); a moved-from handle is empty. Never throw.
  ///@{
  ref(const ref&) noexcept = default;
  ref(ref&&) noexcept = default;
  ref& operator=(const ref&) noexcept = default;
  ref& operator=(ref&&) noexcept = default;
  ///@}
  /// Releases the handle's reference to the weakref object (its callback
  /// does not run then if no other handle holds it when the referent dies).
  [[gnu::always_inline]] ~ref() = default;

  /// The same weakref object, seen through a base class (`ref<Base>` from
  /// `ref<Derived>`).
  template <class U>
  requires(!std::is_same_v<U, T> && std::is_convertible_v<U*, T*>) ref(const ref<U>& o)
  noexcept  // NOLINT
      : WeakHandle(o), ptr_(o.ptr_) {}

  /// `r()`: the referent, or null once it is dead (or for an empty
  /// handle). Never throws; safe against a concurrent release of the last
  /// strong reference.
  Strong<T> operator()() const noexcept {
    if (!w_) return {};
    detail::SideTable* s = detail::weak_lock_side(w_);
    if (!s) return {};
    return detail::StrongAccess::adopt(detail::referent_pointer(ptr_, s->object), s);
  }
  /// The same as `r()`, in std::weak_ptr's name.
  Strong<T> lock() const noexcept { return (*this)(); }
  /// Whether the referent is dead (or the handle empty): std::weak_ptr's
  /// name for Python's `r() is None`. A false result may be stale at once
  /// when another thread holds the last strong reference.
  bool expired() const noexcept { return !w_ || !detail::weak_alive(w_); }
  /// CPython's `r.__callback__ is not None`: false once the weakref has been
  /// cleared (its referent died or was collected), also while its callback
  /// runs.
  bool has_callback() const noexcept { return detail::weak_has_callback(w_); }
  /// Makes this handle empty (releasing its reference to the weakref
  /// object).
  void reset() noexcept {
    reset_handle();
    ptr_ = nullptr;
  }
  /// Exchanges the two handles.
  void swap(ref& o) noexcept {
    swap_handle(o);
    std::swap(ptr_, o.ptr_);
  }

  /// Python's `==` on weakrefs: equal referents while both are alive (the
  /// same object), identity of the weakref objects otherwise.
  template <class U>
  friend bool operator==(const ref& a, const ref<U>& b) noexcept {
    if (a.w_ == b.w_) return true;
    if (!a.w_ || !b.w_) return false;
    return a.w_->side_table() == b.w_->side_table() && detail::weak_alive(a.w_) &&
           detail::weak_alive(b.w_);
  }

  /// A weakref and an object never compare equal in CPython; here the
  /// comparison does not compile (else the object would silently convert to
  /// its basic ref and compare equal to refs to it).
  template <class U>
  friend bool operator==(const ref&, const Strong<U>&) = delete;

  /// CPython's repr: `<weakref at 0x...; to 'Type' at 0x...>`, or
  /// `<weakref at 0x...; dead>`.
  friend std::ostream& operator<<(std::ostream& os, const ref& r) {
    detail::write_weak(os, r.w_);
    return os;
  }

  /// For the library (callbacks, getweakrefs): a handle that adopts one
  /// reference to the weakref object w. Not for users.
  static ref adopt_weak_object(detail::WeakObject* w, T* p = nullptr) noexcept {
    ref r;
    r.w_ = w;
    r.ptr_ = p;
    return r;
  }

 private:
  template <class U>
  friend class ref;
  friend struct detail::HandleAccess;

  T* ptr_ = nullptr;
};

/// Class template argument deduction: `ref r(obj)` and `ref r(obj, callback)`
/// give ref<T> for a Strong<T> obj of any value category.
//
// One guide per value category, so that each is more specialized than the
// implicit guides made from the constructors: those deduce ref<void> (T's
// default), and clang 14 drops their constraints, so the one made from the
// catch-all `ref(U&&)` would otherwise bind a non-const or rvalue Strong
// better than a `const Strong<U>&` guide (and the one made from `ref(const
// Strong<U>&, std::nullptr_t)` is more specialized than a guide taking any
// callback).
///@{
template <class U>
ref(Strong<U>&) -> ref<U>;
template <class U>
ref(const Strong<U>&) -> ref<U>;
template <class U>
ref(Strong<U>&&) -> ref<U>;
template <class U, class F>
ref(Strong<U>&, F&&) -> ref<U>;
template <class U, class F>
ref(const Strong<U>&, F&&) -> ref<U>;
template <class U>
ref(const Strong<U>&, std::nullptr_t) -> ref<U>;
template <class U, class F>
ref(Strong<U>&&, F&&) -> ref<U>;
///@}

}  // namespace weakref

namespace std {
/// Hash of a ref: by referent identity, stable after the referent's death
/// (CPython raises TypeError when hashing a dead ref never hashed before);
/// 0 for an empty handle.
template <class T>
struct hash<weakref::ref<T>> {
  /// The hash of r.
  std::size_t operator()(const weakref::ref<T>& r) const noexcept {
    auto* w = weakref::detail::HandleAccess::get(r);
    return w ? std::hash<std::uintptr_t>{}(weakref::detail::weak_identity(w)) : 0;
  }
};
}  // namespace std
