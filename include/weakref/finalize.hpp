// weakref::finalize: Python's weakref.finalize.
//
//     weakref::finalize f(file_owner, [](int fd) { ::close(fd); }, fd);
//
// calls func(args...) at most once: when the object dies, when f() is called,
// or at program exit (if f.atexit() is true, the default).
//
// Lifetime rules
//  * A finalize is a handle; copies are the same finalizer. A global registry
//    keeps a live finalizer alive after every handle is gone, so dropping
//    the handle does not stop it (as in Python).
//  * func and args are copied into the finalizer and held strongly until it
//    runs or is detached. Holding a Strong to the object itself in them keeps
//    the object alive forever (as in Python): the finalizer then only runs
//    at exit.
//  * The finalizer holds a weakref to the object (it counts in
//    getweakrefcount); it is a callback registered at construction, so it
//    runs in order among the object's weakref callbacks (newest first).
//  * When run by the object's death or at exit, an exception from func goes
//    to the unraisable hook; when run by f(), it propagates to the caller.
//  * At exit (std::atexit, registered on first use, or an explicit call to
//    finalize::exitfunc()), the live finalizers with atexit set run, most
//    recently created first; finalizers created meanwhile are included.
//    After that no finalizer ever runs again.
//  * Threads: every member is thread-safe; func runs on the thread that
//    triggered it (the dying thread, the caller of f(), or the exiting one).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <type_traits>
#include <utility>

#include "ref.hpp"

namespace weakref {

namespace detail {
struct FinalizerState;
WEAKREF_API FinalizerState* finalizer_create(ObjectHeader* h, std::function<void()> func);
WEAKREF_API void finalizer_acquire(FinalizerState* s) noexcept;
WEAKREF_API void finalizer_release(FinalizerState* s) noexcept;
WEAKREF_API bool finalizer_alive(const FinalizerState* s) noexcept;
// peek (detach == false) or detach: the object (+1) and func, or nothing.
WEAKREF_API bool finalizer_peek(FinalizerState* s, bool detach, ObjectHeader** obj,
                                std::function<void()>* func);
WEAKREF_API bool finalizer_get_atexit(const FinalizerState* s) noexcept;
WEAKREF_API void finalizer_set_atexit(FinalizerState* s, bool value) noexcept;
WEAKREF_API bool finalizer_call(FinalizerState* s);
WEAKREF_API void finalizer_write(std::ostream& os, const FinalizerState* s);
WEAKREF_API void finalizer_exitfunc();
WEAKREF_API WeakObject* finalizer_weakref(const FinalizerState* s) noexcept;
}  // namespace detail

class finalize {
 public:
  // What peek() and detach() return (Python's (obj, func, args, kwargs)
  // tuple; func has the arguments bound).
  struct info {
    Strong<void> object;
    std::function<void()> func;
  };

  // An empty handle: not alive, calls nothing.
  finalize() noexcept = default;

  template <class T, class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>
  finalize(const Strong<T>& obj, F&& func, Args&&... args)
      : s_(create(obj, std::bind_front(std::forward<F>(func), std::forward<Args>(args)...))) {}

  template <class U, class F, class... Args>
    requires(!detail::is_strong<std::remove_cvref_t<U>>::value)
  finalize(U&&, F&&, Args&&...) {
    static_assert(detail::dependent_false<U>,
                  "weakref::finalize must be given a weakref::Strong<T> (an object created "
                  "by weakref::make<T>()): other objects cannot be weakly referenced");
  }

  finalize(const finalize& o) noexcept : s_(o.s_) {
    if (s_) detail::finalizer_acquire(s_);
  }
  finalize(finalize&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  finalize& operator=(finalize o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~finalize() {
    if (s_) detail::finalizer_release(s_);
  }

  // Whether the finalizer has not run (nor been detached) yet.
  bool alive() const noexcept { return s_ && detail::finalizer_alive(s_); }

  // The object and func if alive and the object lives; nothing otherwise.
  std::optional<info> peek() const { return look(false); }
  // As peek(), and the finalizer is dead afterwards (func never runs).
  std::optional<info> detach() { return look(true); }

  bool atexit() const noexcept { return s_ && detail::finalizer_get_atexit(s_); }
  void atexit(bool value) noexcept {
    if (s_) detail::finalizer_set_atexit(s_, value);
  }

  // If alive: marks it dead and calls func (its exception propagates).
  // Returns whether func was called.
  bool operator()() { return s_ && detail::finalizer_call(s_); }

  bool is(const finalize& o) const noexcept { return s_ == o.s_; }
  friend bool operator==(const finalize& a, const finalize& b) noexcept { return a.s_ == b.s_; }

  // <finalize object at 0x...; for 'Node' at 0x...> or <... ; dead>
  friend std::ostream& operator<<(std::ostream& os, const finalize& f) {
    detail::finalizer_write(os, f.s_);
    return os;
  }

  // Python's finalize._exitfunc(): runs the live atexit finalizers, newest
  // first, then stops every finalizer for good. Also registered with
  // std::atexit when the first finalizer is made.
  static void exitfunc() { detail::finalizer_exitfunc(); }

 private:
  friend struct detail::HandleAccess;
  friend struct std::hash<finalize>;
  template <class T>
  static detail::FinalizerState* create(const Strong<T>& obj, std::function<void()> func) {
    static_assert(detail::weakly_referenceable<T>,
                  "weakref::finalize: the object's type cannot be weakly referenced");
    auto* h = detail::StrongAccess::header(obj);
    if (!h) detail::throw_null_referent();
    return detail::finalizer_create(h, std::move(func));
  }
  std::optional<info> look(bool detach) const {
    if (!s_) return std::nullopt;
    detail::ObjectHeader* h = nullptr;
    std::function<void()> func;
    if (!detail::finalizer_peek(s_, detach, &h, &func)) return std::nullopt;
    return info{detail::StrongAccess::adopt(h->object(), h), std::move(func)};
  }

  detail::FinalizerState* s_ = nullptr;
};

}  // namespace weakref

namespace std {
template <>
struct hash<weakref::finalize> {
  std::size_t operator()(const weakref::finalize& f) const noexcept {
    return std::hash<const void*>{}(f.s_);
  }
};
}  // namespace std
