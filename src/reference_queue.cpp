// weakref::ReferenceQueue (reference_queue.hpp states its rules for users).
//
// State (QueueControl)
//  * `refs` counts the queue and every weakref registered with it
//    (QueuedWeak, a FinalizerState with `queue` set), so a death posting to
//    a queue destroyed meanwhile still finds live state (closed).
//  * Posting is a Treiber push onto `in` (newest first), linked through
//    WeakObject::prev: once a weakref has been cleared the core never
//    touches `prev` again (clear_list unlinks every weakref before any
//    callback runs and CallbackBatch links through `next`; the weak
//    containers' EntryWeak relies on the same). The posted weakref carries
//    one reference for the queue. `in == kClosed` once the queue is closed:
//    a push then fails, taking nothing.
//  * Consumers serialize on `m`: they take the whole of `in` with one
//    exchange (acquire, pairing with the pushers' CAS: no ABA, the links are
//    visible) into `out`, a FIFO list (the stack reversed), and pop from
//    there. So entries come out in posting order, whatever the threads.
//  * Waking a waiter without a lost wake-up and without making every post
//    take the mutex: a waiter increments `waiters` (seq_cst) under `m` and
//    then re-reads `in` (seq_cst) before it sleeps; a poster pushes (seq_cst)
//    and then reads `waiters` (seq_cst). One of the two sees the other. A
//    poster that sees a waiter takes `m` for a moment (the waiter holds it
//    until it sleeps, which releases it) and notifies: the post is then
//    lock-free unless someone is waiting.
//  * No user code runs under `m`: running and discarding entries (callbacks,
//    finalizers, their destructors) happen after it is released.
#include <condition_variable>
#include <mutex>

#include "weakref/reference_queue.hpp"

namespace weakref::detail {

namespace {
constexpr std::uintptr_t kClosed = 1;
}

struct QueueControl {
  std::atomic<std::uint32_t> refs{1};
  std::atomic<std::uintptr_t> in{0};  // posted, newest first (prev), or kClosed
  std::atomic<std::size_t> pending{0};
  std::atomic<std::uint32_t> waiters{0};
  std::mutex m;
  std::condition_variable cv;
  WeakObject* out_head = nullptr;  // oldest first, linked through prev (m)
  WeakObject* out_tail = nullptr;
  bool closed = false;  // (m)
};

QueueControl* queue_create() { return new QueueControl; }

void queue_acquire(QueueControl* q) noexcept { q->refs.fetch_add(1, std::memory_order_relaxed); }

void queue_release(QueueControl* q) noexcept {
  if (q->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete q;
}

bool queue_post(QueueControl* q, WeakObject* w) noexcept {
  weak_acquire(w);
  q->pending.fetch_add(1, std::memory_order_relaxed);
  std::uintptr_t old = q->in.load(std::memory_order_relaxed);
  for (;;) {
    if (old == kClosed) {
      q->pending.fetch_sub(1, std::memory_order_relaxed);
      weak_release(w);  // not the last: the caller holds one
      return false;
    }
    w->prev = reinterpret_cast<WeakObject*>(old);
    if (q->in.compare_exchange_weak(old, reinterpret_cast<std::uintptr_t>(w),
                                    std::memory_order_seq_cst, std::memory_order_relaxed))
      break;
  }
  if (q->waiters.load(std::memory_order_seq_cst) != 0) {
    { std::lock_guard<std::mutex> g(q->m); }
    q->cv.notify_all();
  }
  return true;
}

namespace {

// Appends h, a posted stack (newest first, linked through prev), to `out`,
// oldest first. Under m.
void append_posted(QueueControl* q, std::uintptr_t h) noexcept {
  WeakObject* fifo = nullptr;  // reverse the stack
  WeakObject* last = nullptr;
  for (auto* w = reinterpret_cast<WeakObject*>(h); w;) {
    WeakObject* next = w->prev;
    w->prev = fifo;
    if (!fifo) last = w;
    fifo = w;
    w = next;
  }
  if (!fifo) return;
  if (q->out_tail)
    q->out_tail->prev = fifo;
  else
    q->out_head = fifo;
  q->out_tail = last;
}

// Moves what was posted to the end of `out`. Under m.
void refill_locked(QueueControl* q) noexcept {
  if (q->closed) return;
  append_posted(q, q->in.exchange(0, std::memory_order_acquire));
}

WeakObject* pop_locked(QueueControl* q) noexcept {
  if (!q->out_head) refill_locked(q);
  WeakObject* w = q->out_head;
  if (!w) return nullptr;
  q->out_head = w->prev;
  if (!q->out_head) q->out_tail = nullptr;
  w->prev = nullptr;
  q->pending.fetch_sub(1, std::memory_order_relaxed);
  return w;
}

}  // namespace

WeakObject* queue_poll(QueueControl* q) noexcept {
  // Cheap when empty: nothing to take, no lock.
  if (q->in.load(std::memory_order_acquire) == 0 && q->pending.load(std::memory_order_relaxed) == 0)
    return nullptr;
  std::lock_guard<std::mutex> g(q->m);
  return pop_locked(q);
}

WeakObject* queue_wait(QueueControl* q, const std::chrono::steady_clock::time_point* deadline) {
  std::unique_lock<std::mutex> lk(q->m);
  for (;;) {
    if (WeakObject* w = pop_locked(q)) return w;
    if (q->closed) return nullptr;
    q->waiters.fetch_add(1, std::memory_order_seq_cst);
    if (q->in.load(std::memory_order_seq_cst) != 0) {  // a post we would miss
      q->waiters.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    bool timed_out = false;
    if (deadline)
      timed_out = q->cv.wait_until(lk, *deadline) == std::cv_status::timeout;
    else
      q->cv.wait(lk);
    q->waiters.fetch_sub(1, std::memory_order_relaxed);
    if (timed_out) return pop_locked(q);
  }
}

WeakObject* queue_close(QueueControl* q) noexcept {
  WeakObject* list;
  {
    std::lock_guard<std::mutex> g(q->m);
    if (q->closed) return nullptr;
    q->closed = true;
    // Everything posted until now; later posts see kClosed.
    append_posted(q, q->in.exchange(kClosed, std::memory_order_acquire));
    list = q->out_head;
    std::size_t n = 0;
    for (WeakObject* w = list; w; w = w->prev) ++n;
    q->pending.fetch_sub(n, std::memory_order_relaxed);
    q->out_head = q->out_tail = nullptr;
  }
  q->cv.notify_all();
  return list;
}

std::size_t queue_size(const QueueControl* q) noexcept {
  return q->pending.load(std::memory_order_relaxed);
}

void queue_run(WeakObject* w) {
  if (w->kind == WeakKind::finalizer)
    finalizer_call(static_cast<FinalizerState*>(w));
  else
    static_cast<QueuedWeak*>(w)->run();
}

void queue_discard(WeakObject* w) noexcept {
  if (w->kind == WeakKind::finalizer)
    finalizer_drop(static_cast<FinalizerState*>(w));
  else
    static_cast<QueuedWeak*>(w)->discard();
}

QueuedWeak::QueuedWeak(WeakKind k, QueueControl* q) noexcept : WeakObject(k, true), queue(q) {
  queue_acquire(q);
}

QueuedWeak::~QueuedWeak() { queue_release(queue); }

// On the dying (or collecting) thread, in the death's callback order.
void QueuedWeak::invoke() {
  if (!queue_post(queue, this)) discard();  // the queue is gone
}

}  // namespace weakref::detail

namespace weakref {

ReferenceQueue::ReferenceQueue() : c_(detail::queue_create()) {}

ReferenceQueue::~ReferenceQueue() {
  // close() without its vector. Each pending entry is settled as its death
  // would be now that the queue is closed: its invoke() fails to post, so
  // a ref's callback is discarded and a finalizer runs here (its exception
  // to the unraisable hook).
  for (detail::WeakObject* w = detail::queue_close(c_); w;) {
    detail::WeakObject* next = w->prev;
    w->prev = nullptr;
    w->invoke();
    detail::weak_release(w);
    w = next;
  }
  detail::queue_release(c_);
}

std::vector<ReferenceQueue::Entry> ReferenceQueue::drain() {
  std::vector<Entry> out;
  out.reserve(size());
  while (detail::WeakObject* w = detail::queue_poll(c_)) {
    Entry e(w);  // owned before the push_back that may throw
    out.push_back(std::move(e));
  }
  return out;
}

std::size_t ReferenceQueue::run_pending() {
  std::size_t n = 0;
  while (detail::WeakObject* w = detail::queue_poll(c_)) {
    Entry e(w);
    e();
    ++n;
  }
  return n;
}

std::vector<ReferenceQueue::Entry> ReferenceQueue::close() {
  detail::WeakObject* list = detail::queue_close(c_);
  std::vector<Entry> out;
  while (list) {
    detail::WeakObject* next = list->prev;
    list->prev = nullptr;
    Entry e(list);
    list = next;
    try {
      out.push_back(std::move(e));
    } catch (...) {
      // No memory for the list: the rest are discarded here (e too).
      while (list) {
        next = list->prev;
        list->prev = nullptr;
        Entry(list).reset();
        list = next;
      }
      throw;
    }
  }
  return out;
}

}  // namespace weakref
