// weakref::finalize (Python's weakref.finalize, Lib/weakref.py).
//
// State and ownership
//  * FinalizerState is the finalizer; handles count in `refs`. While the
//    finalizer is alive ("registered"), it owns its weakref object `wr` and
//    `wr`'s callback owns a reference back to the state: this cycle is what
//    keeps a finalizer alive with no handle (Python's _registry). Popping the
//    finalizer (run, detach, death) breaks the cycle.
//  * Registry::mu guards registered/atexit/index/prev/next/wr/func of every
//    state and the registry list (oldest first). It is never held while user
//    code runs: func is moved out under the lock and called or destroyed
//    after unlocking, and strong references obtained under it are released
//    after unlocking.
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <vector>

#include "weakref/finalize.hpp"
#include "weakref/gc.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

struct FinalizerState {
  std::atomic<std::uint32_t> refs{1};
  bool registered = false;
  bool atexit = true;
  std::uint64_t index = 0;
  FinalizerState* prev = nullptr;
  FinalizerState* next = nullptr;
  WeakObject* wr = nullptr;
  std::function<void()> func;
};

namespace {

struct Registry {
  Mutex mu;
  FinalizerState* head = nullptr;  // oldest
  FinalizerState* tail = nullptr;  // newest
  std::uint64_t next_index = 0;
  bool dirty = false;
  bool shutdown = false;
  std::once_flag atexit_once;
};
Registry& registry() {
  static auto* r = new Registry;  // never destroyed: used at exit
  return *r;
}

void run_from_death(FinalizerState* s) noexcept;

// The finalizer's weakref: its callback is the finalizer itself.
struct FinalizerWeak final : WeakObject {
  FinalizerState* state;
  explicit FinalizerWeak(FinalizerState* s) noexcept
      : WeakObject(WeakKind::finalizer, true), state(s) {
    finalizer_acquire(s);
  }
  ~FinalizerWeak() override { finalizer_release(state); }
  void invoke() override { run_from_death(state); }
};

// What popping a finalizer takes out of the registry; released (weakref and
// func destroyed) when it goes out of scope, after the lock is gone.
struct Popped {
  WeakObject* wr = nullptr;
  std::function<void()> func;
  Popped() = default;
  Popped(const Popped&) = delete;
  Popped& operator=(const Popped&) = delete;
  ~Popped() {
    func = nullptr;
    if (wr) weak_release(wr);
  }
};

// Python's `self._registry.pop(self, None)`. Caller holds the lock.
bool pop_locked(Registry& r, FinalizerState* s, Popped& out) {
  if (!s->registered) return false;
  if (s->prev)
    s->prev->next = s->next;
  else
    r.head = s->next;
  if (s->next)
    s->next->prev = s->prev;
  else
    r.tail = s->prev;
  s->prev = s->next = nullptr;
  s->registered = false;
  out.wr = std::exchange(s->wr, nullptr);
  out.func = std::move(s->func);
  s->func = nullptr;
  return true;
}

std::string repr(const FinalizerState* s) {
  std::ostringstream os;
  finalizer_write(os, s);
  return os.str();
}

void run_from_death(FinalizerState* s) noexcept {
  Registry& r = registry();
  Popped p;
  bool run;
  {
    std::lock_guard<Mutex> g(r.mu);
    run = pop_locked(r, s, p) && !r.shutdown;
  }
  if (!run) return;
  try {
    p.func();
  } catch (...) {
    std::string what;
    try {
      what = repr(s);
    } catch (...) {
    }
    write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
  }
}

void exit_handler() { finalizer_exitfunc(); }

}  // namespace

FinalizerState* finalizer_create(ObjectHeader* h, std::function<void()> func) {
  Registry& r = registry();
  std::call_once(r.atexit_once, [] { std::atexit(&exit_handler); });
  auto* s = new FinalizerState;
  s->func = std::move(func);
  FinalizerWeak* w;
  try {
    w = new FinalizerWeak(s);
  } catch (...) {
    delete s;
    throw;
  }
  try {
    attach_weak(h, w);  // deletes w on failure, dropping its reference to s
  } catch (...) {
    delete s;
    throw;
  }
  std::lock_guard<Mutex> g(r.mu);
  s->wr = w;
  s->registered = true;
  s->index = r.next_index++;
  s->prev = r.tail;
  if (r.tail)
    r.tail->next = s;
  else
    r.head = s;
  r.tail = s;
  r.dirty = true;
  return s;
}

void finalizer_acquire(FinalizerState* s) noexcept {
  s->refs.fetch_add(1, std::memory_order_relaxed);
}

void finalizer_release(FinalizerState* s) noexcept {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete s;
}

bool finalizer_alive(const FinalizerState* s) noexcept {
  std::lock_guard<Mutex> g(registry().mu);
  return s->registered;
}

bool finalizer_peek(FinalizerState* s, bool detach, ObjectHeader** obj,
                    std::function<void()>* func) {
  Registry& r = registry();
  ObjectHeader* h = nullptr;
  Popped p;
  try {
    std::lock_guard<Mutex> g(r.mu);
    if (!s->registered) return false;
    h = weak_lock(s->wr);
    if (!h) return false;
    if (detach) {
      pop_locked(r, s, p);
      *func = std::move(p.func);
      p.func = nullptr;
    } else {
      *func = s->func;
    }
  } catch (...) {
    if (h) decref(h);
    throw;
  }
  *obj = h;
  return true;
}

bool finalizer_get_atexit(const FinalizerState* s) noexcept {
  std::lock_guard<Mutex> g(registry().mu);
  return s->registered && s->atexit;
}

void finalizer_set_atexit(FinalizerState* s, bool value) noexcept {
  std::lock_guard<Mutex> g(registry().mu);
  if (s->registered) s->atexit = value;
}

bool finalizer_call(FinalizerState* s) {
  Registry& r = registry();
  Popped p;
  {
    std::lock_guard<Mutex> g(r.mu);
    if (!pop_locked(r, s, p) || r.shutdown) return false;
  }
  p.func();
  return true;
}

WeakObject* finalizer_weakref(const FinalizerState* s) noexcept {
  std::lock_guard<Mutex> g(registry().mu);
  return s->wr;
}

void finalizer_write(std::ostream& os, const FinalizerState* s) {
  ObjectHeader* h = nullptr;
  if (s) {
    std::lock_guard<Mutex> g(registry().mu);
    if (s->registered) h = weak_lock(s->wr);
  }
  if (!h) {
    os << "<finalize object at " << static_cast<const void*>(s) << "; dead>";
    return;
  }
  os << "<finalize object at " << static_cast<const void*>(s) << "; for '"
     << type_name(*h->type->type) << "' at " << h->object() << '>';
  decref(h);
}

void finalizer_exitfunc() {
  Registry& r = registry();
  const bool reenable_gc = gc::isenabled();
  if (reenable_gc) gc::disable();
  std::vector<FinalizerState*> pending;  // oldest first, +1 each
  auto release_all = [&] {
    for (FinalizerState* f : pending) finalizer_release(f);
    pending.clear();
  };
  bool first = true;
  try {
    for (;;) {
      FinalizerState* f = nullptr;
      {
        std::unique_lock<Mutex> g(r.mu);
        if (first || r.dirty) {
          first = false;
          r.dirty = false;
          std::vector<FinalizerState*> fresh;
          for (FinalizerState* s = r.head; s; s = s->next)
            if (s->atexit) {
              finalizer_acquire(s);
              fresh.push_back(s);
            }
          g.unlock();
          release_all();
          pending = std::move(fresh);
        }
      }
      if (pending.empty()) break;
      f = pending.back();
      pending.pop_back();
      try {
        finalizer_call(f);
      } catch (...) {
        std::string what;
        try {
          what = repr(f);
        } catch (...) {
        }
        write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
      }
      finalizer_release(f);
    }
  } catch (...) {
    release_all();
    std::lock_guard<Mutex> g(r.mu);
    r.shutdown = true;
    if (reenable_gc) gc::enable();
    throw;
  }
  {
    std::lock_guard<Mutex> g(r.mu);
    r.shutdown = true;
  }
  if (reenable_gc) gc::enable();
}

}  // namespace weakref::detail
