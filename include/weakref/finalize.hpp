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
//  * func and args are stored in the finalizer by value (moved from
//    rvalues, copied from lvalues: move-only ones such as std::unique_ptr or
//    std::ofstream are accepted as rvalues) and held until it runs or is
//    detached; they are destroyed right after func has run. func is called
//    with the stored args as lvalues when it can be, else as rvalues (a
//    func taking a std::unique_ptr by value receives it). Holding a Strong
//    to the object itself in them keeps the object alive forever (as in
//    Python): the finalizer then only runs at exit.
//  * The finalizer holds a weakref to the object (it counts in
//    getweakrefcount while the finalizer is alive); it is a callback
//    registered at construction, so it runs in order among the object's
//    weakref callbacks (newest first).
//  * When run by the object's death or at exit, an exception from func goes
//    to the unraisable hook; when run by f(), it propagates to the caller.
//  * peek() and detach() give the object and func with its arguments bound
//    (finalize::function, a move-only callable). detach() hands over the
//    finalizer's own func, without copying it. peek() leaves it in place
//    and gives a copy, when func and its arguments are copyable; for a
//    move-only one its func is empty (nothing is copied or moved).
//  * At exit (std::atexit, registered on first use, or an explicit call to
//    finalize::exitfunc()), the live finalizers with atexit set run, most
//    recently created first; finalizers created meanwhile are included.
//    After that no finalizer ever runs again. The exit step allocates no
//    memory: every finalizer runs even when allocation fails.
//  * Threads: every member is thread-safe; func runs on the thread that
//    triggered it (the dying thread, the caller of f(), or the exiting one).
//    func's copy constructor (used by peek) must not use the finalizer.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <type_traits>
#include <utility>

#include "detail/type_traits.hpp"
#include "ref.hpp"

namespace weakref {

class ReferenceQueue;

namespace detail {

struct QueueControl;  // reference_queue.hpp

// One finalizer (src/finalize.cpp keeps the registry and its rules): its
// weakref to the object (the WeakObject base, linked in the object's list,
// whose callback is the finalizer itself), its place in the registry, and
// func with its arguments bound, in the same allocation (FinalizerFor<F>).
// Its references: the handles, and one for the registry while it is
// registered (alive); a popped finalizer's popper owns that one, with func.
struct WEAKREF_API FinalizerState : WeakObject {
  // Written under the registry lock; also read without it.
  std::atomic<bool> registered{false};
  std::atomic<bool> atexit{true};
  bool pending = false;                   // selected by the exit step (lock)
  std::atomic<std::uint32_t> peekers{0};  // peek() copies of func running
  FinalizerState* reg_prev = nullptr;     // registry list (lock), oldest
  FinalizerState* reg_next = nullptr;     // first
  // Set at registration by ReferenceQueue::finalize (one reference on it,
  // released by the destructor): the death posts the finalizer there
  // instead of running func (src/reference_queue.cpp).
  QueueControl* queue = nullptr;

  FinalizerState() noexcept : WeakObject(WeakKind::finalizer, true) {}
  ~FinalizerState() override;
  void invoke() override;  // the object died: run (as Python's __call__) or post
  // func(args...); for the owner of func only.
  virtual void call() = 0;
  // Destroys func (once; the owner of func, or the destructor).
  virtual void destroy_func() noexcept = 0;
  // A new finalizer object, registered nowhere and linked nowhere, holding a
  // copy of func; null when func is not copyable.
  virtual FinalizerState* copy_func() const = 0;
};

template <class F>
struct FinalizerFor final : FinalizerState {
  template <class G>
  explicit FinalizerFor(G&& g) {
    ::new (static_cast<void*>(&f_)) F(std::forward<G>(g));
  }
  ~FinalizerFor() override { destroy_func(); }
  void call() override {
    if constexpr (std::is_invocable_v<F&>)
      std::invoke(f_);
    else
      std::invoke(std::move(f_));
  }
  void destroy_func() noexcept override {
    if (state.load(std::memory_order_relaxed) & kCallableGone) return;
    state.store(state.load(std::memory_order_relaxed) | kCallableGone, std::memory_order_relaxed);
    f_.~F();
  }
  FinalizerState* copy_func() const override {
    if constexpr (std::is_copy_constructible_v<F>)
      return new FinalizerFor(f_);
    else
      return nullptr;
  }

 private:
  union {
    F f_;
  };
};

[[noreturn]] WEAKREF_API void throw_bad_function_call();

// What a finalizer of a null func (a null function pointer, an empty
// std::function: Python's finalize(obj, None)) does when called.
struct NullFinalizerFunc {
  void operator()() const { throw_bad_function_call(); }
};

// func with args bound: the callable a finalizer stores.
template <class F, class... Args>
auto bind_finalizer(F&& func, Args&&... args) {
  if constexpr (sizeof...(Args) == 0)
    return std::decay_t<F>(std::forward<F>(func));
  else
    return std::bind_front(std::forward<F>(func), std::forward<Args>(args)...);
}

// Registers s (new, one reference for the caller; from weak_memory) with
// its weakref to h. On failure s is deleted and the exception propagates.
WEAKREF_API FinalizerState* finalizer_register(ObjectHeader* h, FinalizerState* s);
// A handle's release (nothing for an empty handle), out of line and given
// the handle's member by address: g++ 12 warns falsely that a
// std::optional<finalize> built in place may destroy an uninitialized
// handle, about an inline release at -O2, and about any inline read of the
// member with -fsanitize=thread -O1 (where a #pragma in this header would
// not help builds that precompile it: g++ 12 drops pragmas from a PCH).
WEAKREF_API void finalizer_release(FinalizerState** s) noexcept;
WEAKREF_API bool finalizer_alive(const FinalizerState* s) noexcept;
// peek (detach == false) or detach: the object (+1) and func (a finalizer
// object owning it, +1; null from a peek of a move-only func), or nothing.
WEAKREF_API bool finalizer_peek(FinalizerState* s, bool detach, ObjectHeader** obj,
                                FinalizerState** func);
WEAKREF_API bool finalizer_get_atexit(const FinalizerState* s) noexcept;
WEAKREF_API void finalizer_set_atexit(FinalizerState* s, bool value) noexcept;
WEAKREF_API bool finalizer_call(FinalizerState* s);
// Pops s (if alive) and destroys func uncalled; false when it was not alive.
WEAKREF_API bool finalizer_drop(FinalizerState* s) noexcept;
WEAKREF_API void finalizer_write(std::ostream& os, const FinalizerState* s);
WEAKREF_API void finalizer_exitfunc() noexcept;

// A new finalizer holding `callable` for h, registered.
template <class C>
FinalizerState* make_finalizer(ObjectHeader* h, C&& callable) {
  using State = FinalizerFor<std::decay_t<C>>;
  const WeakMemory m = weak_memory(h, sizeof(State), alignof(State));
  State* s;
  try {
    s = ::new (m.p) State(std::forward<C>(callable));
  } catch (...) {
    weak_memory_free(m, sizeof(State));
    throw;
  }
  if (m.in_block) s->state.store(kInBlock, std::memory_order_relaxed);
  return finalizer_register(h, s);
}
}  // namespace detail

/// A finalizer: Python's `weakref.finalize`. Calls `func(args...)` at most
/// once: when the object dies, when `f()` is called, or at program exit (if
/// `f.atexit()`, the default).
///
/// A handle; copies are the same finalizer (`f.is(g)`), and a global
/// registry keeps a live finalizer alive after every handle is gone (as in
/// Python). func and args are stored by value and destroyed right after func
/// has run (or when it is detached). An exception from func goes to the
/// unraisable hook when the death or the exit step runs it, and propagates
/// from `f()`. Threads: every member is thread-safe; func runs on the thread
/// that triggered it. The header comment of finalize.hpp has every rule.
class finalize {
 public:
  /// func with its arguments bound, as peek() and detach() give it: a
  /// move-only callable (func may be move-only). Calling it calls func with
  /// the stored arguments (as lvalues when func accepts them so; else as
  /// rvalues, which a second call finds moved from). Empty: throws
  /// std::bad_function_call.
  class function {
   public:
    /// An empty one.
    function() noexcept = default;
    /// Moves: the source becomes empty.
    ///@{
    function(function&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    function& operator=(function&& o) noexcept {
      function(std::move(o)).swap(*this);
      return *this;
    }
    ///@}
    /// Destroys func and its arguments (no lock held: they may run user
    /// code).
    ~function() {
      if (s_) {
        s_->destroy_func();
        detail::weak_release(s_);
      }
    }
    /// Exchanges the two.
    void swap(function& o) noexcept { std::swap(s_, o.s_); }
    /// Whether it holds func (false for an empty one, and for peek()'s copy
    /// of a move-only func).
    explicit operator bool() const noexcept { return s_ != nullptr; }
    /// Calls func with the stored arguments; throws what func throws, and
    /// std::bad_function_call when empty (or when func was null, as calling
    /// Python's None raises).
    void operator()() {
      if (!s_) detail::throw_bad_function_call();
      s_->call();
    }

   private:
    friend class finalize;
    explicit function(detail::FinalizerState* s) noexcept : s_(s) {}
    detail::FinalizerState* s_ = nullptr;  // owns one reference and func
  };

  /// What peek() and detach() return (Python's (obj, func, args, kwargs)
  /// tuple; func has the arguments bound).
  struct info {
    Strong<void> object;  ///< the referent
    function func;        ///< func with its arguments bound
  };

  /// An empty handle: not alive, calls nothing.
  finalize() noexcept = default;

  /// `weakref.finalize(obj, func, *args)`: registers `func(args...)` to run
  /// when obj dies (among its weakref callbacks, newest first), when called,
  /// or at exit. func and args are stored by value (moved from rvalues,
  /// copied from lvalues); a null func fails when called
  /// (std::bad_function_call, as calling None). Throws std::invalid_argument
  /// for a null obj, std::bad_alloc, and what copying func or args throws.
  /// Holding a Strong to obj in func or args keeps obj alive for ever (as in
  /// Python). Does not compile when func cannot be called with args.
  template <class T, class F, class... Args>
  finalize(const Strong<T>& obj, F&& func, Args&&... args)
      : s_(create(obj, std::forward<F>(func), std::forward<Args>(args)...)) {}

  /// Anything but a Strong as the object fails to compile, with a message
  /// saying why.
  template <class U, class F, class... Args>
  requires(!detail::is_strong<std::remove_cvref_t<U>>::value) finalize(U&&, F&&, Args&&...) {
    static_assert(detail::dependent_false<U>,
                  "weakref::finalize must be given a weakref::Strong<T> (an object created "
                  "by weakref::make<T>()): other objects cannot be weakly referenced");
  }

  /// Copies and moves: a copy is a handle to the same finalizer; a
  /// moved-from handle is empty. Never throw.
  ///@{
  finalize(const finalize& o) noexcept : s_(o.s_) {
    if (s_) detail::weak_acquire(s_);
  }
  finalize(finalize&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  finalize& operator=(finalize o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ///@}
  /// Drops the handle; a live finalizer stays registered and still runs.
  ~finalize() { detail::finalizer_release(&s_); }

  /// Python's `f.alive`: whether the finalizer has not run (nor been
  /// detached) yet.
  bool alive() const noexcept { return s_ && detail::finalizer_alive(s_); }

  /// Python's `f.peek()`: the object and func if alive and the object lives;
  /// nothing otherwise. func is a copy (empty when func or an argument is
  /// move-only); throws what that copy throws, and std::bad_alloc.
  std::optional<info> peek() const { return look(false); }
  /// Python's `f.detach()`: as peek(), and the finalizer is dead afterwards
  /// (func never runs); func is the finalizer's own, moved out.
  std::optional<info> detach() { return look(true); }

  /// Python's `f.atexit`: whether the finalizer runs at exit if still alive
  /// (true by default; false once dead).
  bool atexit() const noexcept { return s_ && detail::finalizer_get_atexit(s_); }
  /// Sets `f.atexit` (no effect on a dead finalizer).
  void atexit(bool value) noexcept {
    if (s_) detail::finalizer_set_atexit(s_, value);
  }

  /// Python's `f()`: if alive, marks it dead and calls func (its exception
  /// propagates). Returns whether func was called (Python returns its
  /// result, or None when dead).
  bool operator()() { return s_ && detail::finalizer_call(s_); }

  /// Identity: whether both are handles to the same finalizer.
  bool is(const finalize& o) const noexcept { return s_ == o.s_; }
  /// The same as is() (a Python finalize compares by identity).
  friend bool operator==(const finalize& a, const finalize& b) noexcept { return a.s_ == b.s_; }

  /// CPython's repr: `<finalize object at 0x...; for 'Node' at 0x...>` or
  /// `<finalize object at 0x...; dead>`.
  friend std::ostream& operator<<(std::ostream& os, const finalize& f) {
    detail::finalizer_write(os, f.s_);
    return os;
  }

  /// Python's `finalize._exitfunc()`: runs the live atexit finalizers, newest
  /// first (including those made meanwhile), then stops every finalizer for
  /// good. Also registered with std::atexit when the first finalizer is
  /// made. Allocates nothing; func's exceptions go to the unraisable hook.
  static void exitfunc() noexcept { detail::finalizer_exitfunc(); }

 private:
  friend struct detail::HandleAccess;
  friend struct std::hash<finalize>;
  friend class ReferenceQueue;  // makes queued finalizers, hands them out

  template <class T, class F, class... Args>
  static detail::FinalizerState* create(const Strong<T>& obj, F&& func, Args&&... args) {
    static_assert(detail::weakly_referenceable<T>,
                  "weakref::finalize: the object's type cannot be weakly referenced");
    constexpr bool storable = std::is_constructible_v<std::decay_t<F>, F&&> &&
                              (std::is_constructible_v<std::decay_t<Args>, Args&&> && ...);
    static_assert(storable,
                  "weakref::finalize stores func and args by value: each must be copyable, or "
                  "movable and passed as an rvalue (e.g. std::move(p))");
    constexpr bool callable = std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...> ||
                              std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;
    static_assert(!storable || callable,
                  "weakref::finalize: func cannot be called with args (as func(args...))");
    if constexpr (storable && callable) {
      auto* h = detail::StrongAccess::header(obj);
      if (!h) detail::throw_null_referent();
      if (detail::is_null_callback(func))  // fails when called, as Python's
        return detail::make_finalizer(h, detail::NullFinalizerFunc{});
      return detail::make_finalizer(
          h, detail::bind_finalizer(std::forward<F>(func), std::forward<Args>(args)...));
    } else {
      return nullptr;
    }
  }

  std::optional<info> look(bool detach) const {
    if (!s_) return std::nullopt;
    detail::ObjectHeader* h = nullptr;
    detail::FinalizerState* func = nullptr;
    if (!detail::finalizer_peek(s_, detach, &h, &func)) return std::nullopt;
    return info{detail::StrongAccess::adopt(h->object(), h), function(func)};
  }

  detail::FinalizerState* s_ = nullptr;
};

}  // namespace weakref

namespace std {
/// Hash of a finalize: by the finalizer's identity.
template <>
struct hash<weakref::finalize> {
  /// The hash of f.
  std::size_t operator()(const weakref::finalize& f) const noexcept {
    return std::hash<const void*>{}(f.s_);
  }
};
}  // namespace std
