// weakref::finalize (Python's weakref.finalize, Lib/weakref.py).
//
// State and ownership
//  * FinalizerState (finalize.hpp) is the finalizer and its weakref object
//    in one allocation, with func stored after it (FinalizerFor<F>).
//    Handles count in `refs`; while the finalizer is alive ("registered")
//    the registry owns one more reference: that is what keeps a finalizer
//    with no handle alive (Python's _registry), and what the referent's
//    death finds when it claims the weakref for its callback batch.
//  * Popping a finalizer (run, detach, death, exit; Python's
//    `self._registry.pop(self, None)`) happens under the registry lock and
//    exactly once. The popper then owns func and the registry's reference:
//    it calls or hands over func, destroys it, and releases the reference,
//    with no lock held (func and its destructor are user code). A finalizer
//    popped before its referent died also leaves the referent's weakref list
//    (getweakrefcount stops counting it, as when Python drops the weakref).
//  * Registry::lock (a SpinLock: leaf, never held while user code runs)
//    guards the registry list (oldest first), reg_prev/reg_next, `pending`,
//    `dirty`, `shutdown`, and the writes of `registered` and `atexit`
//    (read without it by alive() and atexit()).
//  * peek() copies func without the lock: it counts itself in `peekers`
//    under the lock while the finalizer is registered, and a popper waits
//    for `peekers` to drop to zero before it touches func.
//  * The exit step (exitfunc) allocates nothing: the registry list is
//    intrusive, and Python's snapshot of the finalizers to run is the
//    `pending` flag of each. So every finalizer runs even when memory is
//    exhausted at exit.
//
// Costs: making a finalizer is one allocation (func and its arguments
// inside) plus its referent's side table if it had none, the registry lock,
// and attach_weak; its death's part is the registry lock and the release of
// the registry's reference.
#include <atomic>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <sstream>

#include "weakref/detail/atomics.hpp"
#include "weakref/detail/dcheck.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/finalize.hpp"
#include "weakref/gc.hpp"
#include "weakref/reference_queue.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

namespace {

struct Registry {
  SpinLock lock;
  FinalizerState* head = nullptr;  // oldest
  FinalizerState* tail = nullptr;  // newest
  bool dirty = false;              // a finalizer was made since the exit
                                   // step's last selection
  bool shutdown = false;           // after the exit step: nothing runs
};

void exit_handler() { finalizer_exitfunc(); }

Registry& registry() {
  static auto* r = new Registry;  // never destroyed: used at exit
  return *r;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_registry_made = (registry(), true);

// The exit step is registered with the first finalizer, as CPython's
// finalize registers its atexit hook (so it runs before the atexit handlers
// registered earlier, after those registered later). The collector's module
// state, which the exit step uses, is made at start-up (src/gc/module.cpp).
constinit std::atomic<bool> exit_step_registered{false};
void register_exit_step() noexcept {
  if (exit_step_registered.load(std::memory_order_acquire)) [[likely]]
    return;
  if (!exit_step_registered.exchange(true, std::memory_order_acq_rel)) std::atexit(&exit_handler);
}

// Python's `self._registry.pop(self, None)`. Caller holds the lock; true:
// the caller now owns func and the registry's reference (see Popped).
bool pop_locked(Registry& r, FinalizerState* s) noexcept {
  if (!s->registered.load(std::memory_order_relaxed)) {
    WEAKREF_DCHECK(!s->reg_prev && !s->reg_next && r.head != s && !s->pending,
                   "a popped finalizer is out of the registry");
    return false;
  }
  WEAKREF_DCHECK(s->reg_prev ? s->reg_prev->reg_next == s : r.head == s,
                 "a registered finalizer is linked in the registry");
  WEAKREF_DCHECK(s->reg_next ? s->reg_next->reg_prev == s : r.tail == s,
                 "a registered finalizer is linked in the registry");
  if (s->reg_prev)
    s->reg_prev->reg_next = s->reg_next;
  else
    r.head = s->reg_next;
  if (s->reg_next)
    s->reg_next->reg_prev = s->reg_prev;
  else
    r.tail = s->reg_prev;
  s->reg_prev = s->reg_next = nullptr;
  s->pending = false;
  s->registered.store(false, std::memory_order_relaxed);
  return true;
}

// What a pop hands over: func and the registry's reference. Waits for the
// peek() copies still running; at the end, destroys func (unless handed
// over) and releases the reference, with no lock held.
struct Popped {
  FinalizerState* s;
  explicit Popped(FinalizerState* st) noexcept : s(st) {
    WEAKREF_DCHECK(!s->registered.load(std::memory_order_relaxed),
                   "a finalizer handed over by its pop is no longer registered");
    unsigned spins = 0;
    while (s->peekers.load(std::memory_order_acquire) != 0) spin_pause(spins);
  }
  Popped(const Popped&) = delete;
  Popped& operator=(const Popped&) = delete;
  ~Popped() {
    if (!s) return;
    s->destroy_func();
    weak_release(s);
  }
  FinalizerState* hand_over() noexcept { return std::exchange(s, nullptr); }
};

void report(FinalizerState* s) noexcept {
  std::string what;
  try {
    std::ostringstream os;
    finalizer_write(os, s);
    what = os.str();
  } catch (...) {
  }
  write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
}

}  // namespace

FinalizerState::~FinalizerState() {
  if (queue) queue_release(queue);
}

// The referent died (the callback batch holds a reference to this). A
// finalizer registered with a ReferenceQueue is posted there instead, and
// runs when the queue's owner runs the entry (finalizer_call); once the
// queue is closed, it runs here, as any finalizer (src/reference_queue.cpp).
void FinalizerState::invoke() {
  if (queue && queue_post(queue, this)) return;
  Registry& r = registry();
  bool run;
  {
    std::lock_guard<SpinLock> g(r.lock);
    if (!pop_locked(r, this)) return;
    run = !r.shutdown;
  }
  Popped p(this);
  if (!run) return;
  try {
    call();
  } catch (...) {
    report(this);
  }
}

void throw_bad_function_call() { throw std::bad_function_call(); }

FinalizerState* finalizer_register(ObjectHeader* h, FinalizerState* s) {
  Registry* r = &registry();
  register_exit_step();
  // The caller's reference and the registry's, before the weakref is
  // published (nothing can reach s before this returns but the death of h,
  // which cannot happen: the caller holds h).
  s->refs.store(2, std::memory_order_relaxed);
  s->registered.store(true, std::memory_order_relaxed);
  attach_weak(h, s);  // frees s on failure
  std::lock_guard<SpinLock> g(r->lock);
  WEAKREF_DCHECK(!s->reg_prev && !s->reg_next, "a new finalizer is in no registry list");
  s->reg_prev = r->tail;
  if (r->tail)
    r->tail->reg_next = s;
  else
    r->head = s;
  r->tail = s;
  r->dirty = true;
  return s;
}

void finalizer_release(FinalizerState** s) noexcept {
  if (*s) weak_release(*s);
}

bool finalizer_alive(const FinalizerState* s) noexcept {
  return s->registered.load(std::memory_order_acquire);
}

bool finalizer_peek(FinalizerState* s, bool detach, ObjectHeader** obj, FinalizerState** func) {
  Registry& r = registry();
  ObjectHeader* h;
  {
    std::lock_guard<SpinLock> g(r.lock);
    if (!s->registered.load(std::memory_order_relaxed)) return false;
    h = weak_lock(s);
    if (!h) return false;
    if (detach) {
      const bool popped = pop_locked(r, s);
      WEAKREF_DCHECK(popped, "a registered finalizer pops");
    } else {
      s->peekers.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (detach) {
    Popped p(s);
    unlink_weak(s);
    *func = p.hand_over();
  } else {
    struct Done {
      FinalizerState* s;
      ~Done() { s->peekers.fetch_sub(1, std::memory_order_release); }
    } done{s};
    try {
      *func = s->copy_func();  // user code (func's copy constructor)
    } catch (...) {
      decref(h);
      throw;
    }
  }
  *obj = h;
  return true;
}

bool finalizer_get_atexit(const FinalizerState* s) noexcept {
  return s->registered.load(std::memory_order_acquire) && s->atexit.load(std::memory_order_relaxed);
}

void finalizer_set_atexit(FinalizerState* s, bool value) noexcept {
  Registry& r = registry();
  std::lock_guard<SpinLock> g(r.lock);
  if (s->registered.load(std::memory_order_relaxed))
    s->atexit.store(value, std::memory_order_relaxed);
}

bool finalizer_call(FinalizerState* s) {
  Registry& r = registry();
  bool run;
  {
    std::lock_guard<SpinLock> g(r.lock);
    if (!pop_locked(r, s)) return false;
    run = !r.shutdown;
  }
  Popped p(s);
  unlink_weak(s);
  if (!run) return false;
  s->call();  // an exception propagates; p still cleans up
  return true;
}

bool finalizer_drop(FinalizerState* s) noexcept {
  Registry& r = registry();
  {
    std::lock_guard<SpinLock> g(r.lock);
    if (!pop_locked(r, s)) return false;
  }
  Popped p(s);  // destroys func, releases the registry's reference
  unlink_weak(s);
  return true;
}

void finalizer_write(std::ostream& os, const FinalizerState* s) {
  ObjectHeader* h = nullptr;
  if (s) {
    std::lock_guard<SpinLock> g(registry().lock);
    if (s->registered.load(std::memory_order_relaxed)) h = weak_lock(s);
  }
  if (!h) {
    os << "<finalize object at " << static_cast<const void*>(s) << "; dead>";
    return;
  }
  os << "<finalize object at " << static_cast<const void*>(s) << "; for '"
     << type_name(*h->type->type) << "' at " << h->object() << '>';
  decref(h);
}

// Python's _exitfunc: the finalizers to run are selected (`pending`) when
// the step starts and again whenever finalizers were made since (`dirty`);
// the newest selected one runs next, until none is left. Nothing here
// allocates: the list is intrusive and each finalizer is held by a count.
void finalizer_exitfunc() noexcept {
  Registry& r = registry();
  const bool reenable_gc = gc::isenabled();
  if (reenable_gc) gc::disable();
  bool first = true;
  for (;;) {
    FinalizerState* f = nullptr;
    {
      std::lock_guard<SpinLock> g(r.lock);
      if (first || r.dirty) {
        first = false;
        r.dirty = false;
        for (FinalizerState* s = r.head; s; s = s->reg_next)
          s->pending = s->atexit.load(std::memory_order_relaxed);
      }
      for (FinalizerState* s = r.tail; s; s = s->reg_prev)
        if (s->pending) {
          WEAKREF_DCHECK(s->registered.load(std::memory_order_relaxed),
                         "a finalizer selected to run at exit is registered");
          s->pending = false;
          f = s;
          weak_acquire(f);  // registered: the registry holds it
          break;
        }
    }
    if (!f) break;
    try {
      finalizer_call(f);
    } catch (...) {
      report(f);
    }
    weak_release(f);
  }
  {
    std::lock_guard<SpinLock> g(r.lock);
    r.shutdown = true;
  }
  if (reenable_gc) gc::enable();
}

}  // namespace weakref::detail
