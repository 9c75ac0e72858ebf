// weakref::ReferenceQueue: deaths delivered to a chosen thread (Java's
// java.lang.ref.ReferenceQueue; CPython has none: there one writes
// `weakref.ref(obj, queue.put)`, and the callback runs on the dying thread).
//
//     weakref::ReferenceQueue deaths;                  // polled by the UI thread
//     weakref::ref<Node> r = deaths.ref(node);         // posted when node dies
//     weakref::ref<Node> r2 = deaths.ref(node, [](const weakref::ref<Node>& dead) { ... });
//     weakref::finalize f = deaths.finalize(node, close_fd, fd);
//     ...                                              // node dies on a worker
//     while (auto death = deaths.poll()) (*death)();   // on the UI thread
//
// Lifetime rules
//  * queue.ref(obj[, callback]) makes a new weakref object to obj registered
//    with the queue (never the reused basic ref: it is a ref with a callback,
//    the post); queue.finalize(obj, func, args...) makes a finalizer
//    registered with it. They are ordinary refs and finalizers otherwise
//    (getweakrefcount counts them, r() locks, f() / detach() work).
//  * When obj dies (its last strong reference released on any thread, or
//    found garbage by gc::collect), the weakref is cleared like every other
//    and, where its callback would have run, it is posted to the queue
//    instead: nothing of the user's runs on the dying thread.
//  * An entry (ReferenceQueue::Entry) is the dead weakref object itself, as
//    Java's poll() gives the Reference: entry.as_ref<T>() is() the ref that
//    was registered (a ref's hash and == stay valid after death, so the owner
//    maps it back to its data); entry.as_finalize() is() the finalizer.
//  * A deferred callback and a finalizer's func run when the owner runs the
//    entry (entry(), or run_pending()), on the owner's thread, once; an
//    exception propagates to that caller. An entry destroyed without being
//    run discards what it would have run: the callback is destroyed
//    uncalled, the finalizer is detached (func destroyed uncalled; alive()
//    becomes false). A finalizer posted and not yet run stays alive: f()
//    runs it at once (its entry then does nothing), and so does the exit
//    step, below.
//  * Ordering: entries come out in the order they were posted (FIFO). One
//    death posts its weakrefs in CPython's callback order, newest first
//    (interleaved with the object's other callbacks, which run meanwhile);
//    deaths on different threads are ordered by their posts.
//  * What is posted: a ref whose every handle is gone before the death is
//    not (as a CPython callback whose weakref is gone does not run, and Java
//    does not enqueue an unreachable Reference); a finalizer always is (the
//    registry holds it) unless f() or detach() came first. A weakref that
//    is cyclic garbage itself is not posted (CPython's rule for callbacks).
//  * The queue holds no strong reference to anything: pending entries hold
//    dead weakrefs only. An entry may be received while the dying thread is
//    still running the object's destructor (callbacks come before ~T, as in
//    CPython); the object can no longer be reached by then.
//  * A queue destroyed first (or close()d) posts nothing any more; each of
//    its weakrefs is then settled as if it had no queue: a ref's deferred
//    callback is destroyed uncalled (it was for the owner, who is gone), a
//    finalizer runs (finalize's promise: func runs once, the queue only
//    chooses where). The destructor settles the pending entries that way on
//    its own thread (a finalizer's exception goes to the unraisable hook);
//    a weakref whose referent dies later is settled on the dying thread.
//    close() instead returns the pending entries, for the caller to run or
//    drop. Nothing leaks or dangles: the queue's state is counted by the
//    weakrefs registered with it and lives as long as the last of them, and
//    entries already taken out stay valid.
//  * Exit: a queued finalizer with atexit set that has not run by the time
//    of finalize's exit step (its object alive, or its entry still pending)
//    runs in that step, on the exiting thread, like any finalizer. Deaths in
//    thread-exit and static destructors post like any other (or are
//    settled as above, if the queue is gone by then: a static queue may be
//    destroyed before or after finalize's exit step, either way each
//    finalizer runs once).
//
// Threads
//  * Every member is thread-safe. Any number of threads post; any number
//    may poll or wait, and each entry goes to exactly one of them.
//  * Posting never blocks a death for long and never allocates (the
//    weakref object is the queue's node, allocated at registration): a
//    lock-free push, plus, only while a thread waits on the queue, a moment
//    under the queue's mutex to wake it. No user code runs under the
//    queue's mutex.
//  * A queue must not be destroyed while other threads use it (as any
//    object); its weakrefs may die on any thread meanwhile.
//  * fork(): the queue's mutex is not one of the library locks that the
//    fork gate (src/fork.cpp) holds still, so a child must not use a queue
//    on which another thread of the parent was waiting or being woken.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/weak_object.hpp"
#include "finalize.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref {

namespace detail {

// A queue's shared state (src/reference_queue.cpp): refcounted by the
// queue and by every weakref registered with it.
struct QueueControl;
WEAKREF_API QueueControl* queue_create();
WEAKREF_API void queue_acquire(QueueControl* q) noexcept;
WEAKREF_API void queue_release(QueueControl* q) noexcept;
// The death's post of w (cleared; the caller holds a reference): pushes it
// with one new reference for the queue. False, nothing taken, once the
// queue is closed.
WEAKREF_API bool queue_post(QueueControl* q, WeakObject* w) noexcept;
// The oldest entry (its reference handed over), or null: at once, or when
// `deadline` (null: none) passes, or once the queue is closed.
WEAKREF_API WeakObject* queue_poll(QueueControl* q) noexcept;
WEAKREF_API WeakObject* queue_wait(QueueControl* q,
                                   const std::chrono::steady_clock::time_point* deadline);
// Closes the queue for good; the pending entries, oldest first, linked
// through WeakObject::prev.
WEAKREF_API WeakObject* queue_close(QueueControl* q) noexcept;
WEAKREF_API std::size_t queue_size(const QueueControl* q) noexcept;
// Runs (or discards) what an entry defers: a queued ref's callback, a
// queued finalizer's func. At most once.
WEAKREF_API void queue_run(WeakObject* w);
WEAKREF_API void queue_discard(WeakObject* w) noexcept;

// A weakref registered with a queue: its callback is the post (on the dying
// thread); the user's callback, if any, is deferred to run().
struct WEAKREF_API QueuedWeak : WeakObject {
  QueueControl* const queue;  // one reference

  QueuedWeak(WeakKind k, QueueControl* q) noexcept;
  ~QueuedWeak() override;
  void invoke() final;  // the death: post, or discard when the queue is closed
  // The owner's side: runs the deferred callback (once), or destroys it.
  virtual void run() {}
  virtual void discard() noexcept {}
};

template <class Handle, class F>
struct QueuedCallbackWeak final : QueuedWeak {
  template <class G>
  QueuedCallbackWeak(WeakKind k, QueueControl* q, G&& g) : QueuedWeak(k, q) {
    ::new (static_cast<void*>(&f_)) F(std::forward<G>(g));
  }
  ~QueuedCallbackWeak() override { discard(); }

  void run() override {
    if (state.load(std::memory_order_relaxed) & kCallableGone) return;
    struct Destroy {
      QueuedCallbackWeak* self;
      ~Destroy() { self->discard(); }
    } destroy{this};
    if constexpr (std::is_invocable_v<F&, const Handle&>) {
      weak_acquire(this);
      const Handle h = Handle::adopt_weak_object(this);
      f_(h);
    } else if constexpr (std::is_invocable_v<F&, Handle>) {
      weak_acquire(this);
      f_(Handle::adopt_weak_object(this));
    } else {
      f_();
    }
  }
  void discard() noexcept override {
    if (state.load(std::memory_order_relaxed) & kCallableGone) return;
    state.store(state.load(std::memory_order_relaxed) | kCallableGone, std::memory_order_relaxed);
    f_.~F();
  }

 private:
  union {
    F f_;  // destroyed by discard(), at most once
  };
};

}  // namespace detail

/// A queue to which weakrefs and finalizers post their referent's death,
/// so that the thread owning the queue handles it (Java's ReferenceQueue).
/// The header comment states the lifetime, ordering and thread rules.
class WEAKREF_API ReferenceQueue {
 public:
  /// One posted death: the dead weakref (or finalizer) registered with the
  /// queue, and what it defers. Move-only; running it (operator()) runs the
  /// deferred callback or finalizer once; destroying it unrun discards that.
  class WEAKREF_API Entry {
   public:
    /// An empty entry (what pop() returns once the queue is closed).
    Entry() noexcept = default;
    /// Takes o's weakref (and what it defers); o is left empty.
    Entry(Entry&& o) noexcept : w_(std::exchange(o.w_, nullptr)) {}
    /// Discards what this entry holds (as its destructor), then takes o's.
    Entry& operator=(Entry&& o) noexcept {
      Entry(std::move(o)).swap(*this);
      return *this;
    }
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    /// Discards what the entry defers unless it ran (see the header comment).
    ~Entry() { reset(); }

    /// Whether the entry holds a death (false: empty).
    explicit operator bool() const noexcept { return w_ != nullptr; }
    /// Whether the death is a finalizer's (as_finalize()) rather than a ref's (as_ref()).
    bool is_finalizer() const noexcept { return w_ && w_->kind == detail::WeakKind::finalizer; }
    /// The dead ref that was registered (is() it, == it, same hash); empty
    /// for a finalizer's entry. T: the referent's type, a base of it, or
    /// void (the ref is dead: only its identity is used).
    template <class T = void>
    weakref::ref<T> as_ref() const noexcept {
      if (!w_ || is_finalizer()) return {};
      detail::weak_acquire(w_);
      return weakref::ref<T>::adopt_weak_object(w_);
    }
    /// The finalizer that was registered (is() it); empty for a ref's entry.
    weakref::finalize as_finalize() const noexcept;
    /// Runs the deferred callback (with the dead ref) or the finalizer's
    /// func, on this thread, at most once (a finalizer: unless f(), detach()
    /// or the exit step came first). Its exception propagates. Nothing for a
    /// ref registered without a callback.
    void operator()() {
      if (w_) detail::queue_run(w_);
    }
    /// Discards what the entry defers and empties it.
    void reset() noexcept {
      if (detail::WeakObject* w = std::exchange(w_, nullptr)) {
        detail::queue_discard(w);
        detail::weak_release(w);
      }
    }
    /// Exchanges the two entries' contents.
    void swap(Entry& o) noexcept { std::swap(w_, o.w_); }

   private:
    friend class ReferenceQueue;
    explicit Entry(detail::WeakObject* adopted) noexcept : w_(adopted) {}
    detail::WeakObject* w_ = nullptr;  // one reference
  };

  /// An empty, open queue.
  ReferenceQueue();
  ReferenceQueue(const ReferenceQueue&) = delete;
  ReferenceQueue& operator=(const ReferenceQueue&) = delete;
  /// Closes the queue and settles its pending entries: refs' callbacks are
  /// destroyed uncalled, finalizers run here (header comment).
  ~ReferenceQueue();

  /// A new weakref to obj registered with this queue: obj's death posts it.
  template <class U>
  weakref::ref<U> ref(const Strong<U>& obj) {
    return weakref::ref<U>::adopt_weak_object(make_queued<detail::QueuedWeak>(obj), obj.get());
  }
  /// A new weakref to obj whose death posts it, and whose callback
  /// (callback(ref<U>) or callback()) runs when the entry is run, on the
  /// running thread. A null callback (nullptr, an empty std::function) is
  /// none, as ref(obj).
  template <class U, class F>
  requires detail::weak_callback<F, weakref::ref<U>> weakref::ref<U> ref(const Strong<U>& obj,
                                                                         F&& callback) {
    if (detail::is_null_callback(callback)) return ref(obj);
    using W = detail::QueuedCallbackWeak<weakref::ref<U>, std::decay_t<F>>;
    return weakref::ref<U>::adopt_weak_object(make_queued<W>(obj, std::forward<F>(callback)),
                                              obj.get());
  }
  /// ref(obj): a null callback is none.
  template <class U>
  weakref::ref<U> ref(const Strong<U>& obj, std::nullptr_t) {
    return ref(obj);
  }
  /// weakref::finalize(obj, func, args...) whose death posts the finalizer:
  /// func(args...) runs when its entry is run (or f() is called, or at exit),
  /// never on the dying thread.
  template <class U, class F, class... Args>
  weakref::finalize finalize(const Strong<U>& obj, F&& func, Args&&... args) {
    static_assert(detail::weakly_referenceable<U>,
                  "ReferenceQueue::finalize: the object's type cannot be weakly referenced");
    static_assert(std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...> ||
                      std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>,
                  "ReferenceQueue::finalize: func cannot be called with args (as func(args...))");
    detail::ObjectHeader* h = detail::StrongAccess::header(obj);
    if (!h) detail::throw_null_referent();
    if (detail::is_null_callback(func))
      return adopt_finalizer(make_queued_finalizer(h, detail::NullFinalizerFunc{}));
    return adopt_finalizer(make_queued_finalizer(
        h, detail::bind_finalizer(std::forward<F>(func), std::forward<Args>(args)...)));
  }

  /// The oldest pending entry, or nothing. Never blocks but for the
  /// queue's mutex, held by others only briefly.
  std::optional<Entry> poll() noexcept { return optional_entry(detail::queue_poll(c_)); }
  /// The oldest entry, waiting for one as long as it takes (Java's
  /// remove()). Empty once the queue is closed.
  Entry pop() { return Entry(detail::queue_wait(c_, nullptr)); }
  /// The oldest entry, waiting for one at most `timeout`.
  template <class Rep, class Period>
  std::optional<Entry> wait_for(const std::chrono::duration<Rep, Period>& timeout) {
    return wait_until(std::chrono::steady_clock::now() + timeout);
  }
  /// The oldest entry, waiting for one until `deadline` (any clock).
  template <class Clock, class Duration>
  std::optional<Entry> wait_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::chrono::steady_clock::time_point d;
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>)
      d = std::chrono::time_point_cast<std::chrono::steady_clock::duration>(deadline);
    else
      d = std::chrono::steady_clock::now() +
          std::chrono::duration_cast<std::chrono::steady_clock::duration>(deadline - Clock::now());
    return optional_entry(detail::queue_wait(c_, &d));
  }
  /// Every pending entry, oldest first; the queue is empty afterwards
  /// (unless deaths post meanwhile).
  std::vector<Entry> drain();
  /// Runs pending entries, oldest first, until the queue is empty; the
  /// number run. An exception from one propagates; the rest stay queued.
  std::size_t run_pending();
  /// Closes the queue: nothing is posted to it any more (later deaths of
  /// its weakrefs are settled on the dying thread, as the destructor
  /// settles pending ones) and waiters wake up. Returns what was pending,
  /// oldest first, for the caller to run or drop.
  std::vector<Entry> close();

  /// The number of pending entries (a snapshot).
  std::size_t size() const noexcept { return detail::queue_size(c_); }
  /// Whether no entry is pending (a snapshot).
  bool empty() const noexcept { return size() == 0; }

 private:
  static std::optional<Entry> optional_entry(detail::WeakObject* w) noexcept {
    if (!w) return std::nullopt;
    return Entry(w);
  }
  template <class W, class U, class... A>
  detail::WeakObject* make_queued(const Strong<U>& obj, A&&... args) {
    static_assert(detail::weakly_referenceable<U>,
                  "ReferenceQueue::ref: the object's type cannot be weakly referenced");
    detail::ObjectHeader* h = detail::StrongAccess::header(obj);
    if (!h) detail::throw_null_referent();
    return detail::make_attached<W>(h, detail::WeakKind::ref, c_, std::forward<A>(args)...);
  }
  template <class C>
  detail::FinalizerState* make_queued_finalizer(detail::ObjectHeader* h, C&& callable) {
    using State = detail::FinalizerFor<std::decay_t<C>>;
    const detail::WeakMemory m = detail::weak_memory(h, sizeof(State), alignof(State));
    State* s;
    try {
      s = ::new (m.p) State(std::forward<C>(callable));
    } catch (...) {
      detail::weak_memory_free(m, sizeof(State));
      throw;
    }
    if (m.in_block) s->state.store(detail::kInBlock, std::memory_order_relaxed);
    detail::queue_acquire(c_);
    s->queue = c_;  // released by ~FinalizerState, also on failure below
    return detail::finalizer_register(h, s);
  }
  static weakref::finalize adopt_finalizer(detail::FinalizerState* s) noexcept {
    weakref::finalize f;
    f.s_ = s;
    return f;
  }

  detail::QueueControl* c_;
};

inline weakref::finalize ReferenceQueue::Entry::as_finalize() const noexcept {
  if (!is_finalizer()) return {};
  detail::weak_acquire(w_);
  return adopt_finalizer(static_cast<detail::FinalizerState*>(w_));
}

}  // namespace weakref
