// Weak reference objects: creation and reuse, the per-object list in CPython's
// order, locking the referent, clearing on death, and callback batches.
// Ownership and lock rules are at the top of weak_object.hpp.
//
// The list of an object's weakrefs (SideTable::head) is kept exactly as
// CPython keeps it (Objects/weakrefobject.c): the basic ref (no callback)
// first, then the basic proxy, then every other weakref, newest first. Death
// walks the list from the head, so callbacks run newest first.
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "weakref/detail/weak_object.hpp"
#include "weakref/ref.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::detail {

using namespace bits;

WeakObject::~WeakObject() = default;

void throw_null_referent() {
  throw std::invalid_argument("cannot create weak reference to 'NoneType' object");
}

namespace {

void unlink(SideTable* s, WeakObject* w) noexcept {
  if (w->prev)
    w->prev->next = w->next;
  else
    s->head = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
}

void insert_after(SideTable* s, WeakObject* prev, WeakObject* w) noexcept {
  if (!prev) {
    w->prev = nullptr;
    w->next = s->head;
    if (s->head) s->head->prev = w;
    s->head = w;
  } else {
    w->prev = prev;
    w->next = prev->next;
    if (prev->next) prev->next->prev = w;
    prev->next = w;
  }
  w->linked = true;
}

// CPython's get_basic_refs: the callback-less ref at the head, and the
// callback-less proxy right after it.
void basic_refs(SideTable* s, WeakObject*& ref, WeakObject*& proxy) noexcept {
  ref = proxy = nullptr;
  WeakObject* w = s->head;
  if (w && !w->has_callback && w->kind == WeakKind::ref) {
    ref = w;
    w = w->next;
  }
  if (w && !w->has_callback && w->kind == WeakKind::proxy) proxy = w;
}

}  // namespace

bool weak_try_acquire(WeakObject* w) noexcept {
  std::uint32_t n = w->refs.load(std::memory_order_relaxed);
  while (n != 0) {
    if (rmw_compare_exchange(w->refs, n, n + 1, std::memory_order_acquire,
                             std::memory_order_relaxed))
      return true;
  }
  return false;
}

void weak_release(WeakObject* w) noexcept {
  if (rmw_fetch_sub(w->refs, 1U, std::memory_order_acq_rel) != 1) return;
  SideTable* s = w->side_table();
  // A cleared weakref is already unlinked: clear_weakrefs and clear_one set
  // linked = false before the release that sets the cleared bit, which this
  // acquire load sees. Only a live one needs the lock to leave the list.
  if (s && !(w->side.load(std::memory_order_acquire) & 1)) {
    std::lock_guard<SpinLock> g(s->lock);
    if (w->linked) unlink(s, w);
  }
  delete w;  // the callback's destructor may run user code: no lock held
  if (s) side_release(s);
}

// The order matters. A collector clears the weakrefs of garbage while the
// objects are frozen, then unfreezes them, bumping the epoch. So a locker
// reads the count word first and the cleared bit after it: if the word it
// read is the unfrozen one of the new epoch, the clear (made before the
// unfreeze) is visible; if it read an older word, its compare-and-swap
// fails because the epoch changed, and it starts over. (The inline
// weak_lock read the cleared bit once already, to fail fast; that early read
// proves nothing about the word, so it is read again here, in this order.)
SideTable* weak_lock_uncleared(const WeakObject* w) noexcept {
  auto* s = w->side_table();
  unsigned spins = 0;
  for (;;) {
    std::uint64_t x = s->word.load(std::memory_order_acquire);
    if (count(x) == 0) return nullptr;
    if (x & kFrozen) {  // a collector is judging the object: wait for it
      spin_pause(spins);
      continue;
    }
    if (w->side.load(std::memory_order_acquire) & 1) return nullptr;
    if (rmw_compare_exchange(s->word, x, x + kOne, std::memory_order_acquire,
                             std::memory_order_relaxed))
      return s;
  }
}

bool weak_alive(const WeakObject* w) noexcept {
  std::uintptr_t v = w->side.load(std::memory_order_acquire);
  if (v & 1) return false;
  std::uint64_t x = reinterpret_cast<SideTable*>(v)->word.load(std::memory_order_acquire);
  return count(x) != 0;
}

WeakObject* basic_weak(ObjectHeader* h, WeakKind kind) {
  SideTable* s = ensure_side(h);
  auto find = [&]() -> WeakObject* {
    WeakObject *r, *p;
    basic_refs(s, r, p);
    WeakObject* found = kind == WeakKind::ref ? r : p;
    return found && weak_try_acquire(found) ? found : nullptr;
  };
  // One critical section: reuse the basic weakref, or make and link it.
  // Allocating a WeakObject runs no user code (its operator new is the
  // library's small-block allocator), so it may happen under the side lock;
  // if it throws, nothing has changed.
  std::lock_guard<SpinLock> g(s->lock);
  if (WeakObject* w = find()) return w;
  auto* w = new WeakObject(kind, false);
  w->side.store(reinterpret_cast<std::uintptr_t>(s), std::memory_order_relaxed);
  rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  WeakObject *r, *p;
  basic_refs(s, r, p);
  insert_after(s, kind == WeakKind::ref ? nullptr : r, w);
  return w;
}

void attach_weak(ObjectHeader* h, WeakObject* w) {
  SideTable* s;
  try {
    s = ensure_side(h);
  } catch (...) {
    delete w;
    throw;
  }
  w->side.store(reinterpret_cast<std::uintptr_t>(s), std::memory_order_relaxed);
  rmw_fetch_add(s->weak, 1U, std::memory_order_relaxed);
  std::lock_guard<SpinLock> g(s->lock);
  WeakObject *r, *p;
  basic_refs(s, r, p);
  insert_after(s, p ? p : r, w);
}

void clear_weakrefs(SideTable* s, CallbackBatch& batch, bool (*skip)(WeakObject*, void*),
                    void* ctx) noexcept {
  std::lock_guard<SpinLock> g(s->lock);
  WeakObject* w = s->head;
  // Before any cleared bit (see kWeakCleared): a locker that then succeeds
  // on a word without the flag locked before this clear began.
  if (w) rmw_fetch_or(s->word, kWeakCleared, std::memory_order_acq_rel);
  s->head = nullptr;
  while (w) {
    WeakObject* next = w->next;
    // Take the callback's reference before setting the cleared bit: once
    // the bit is visible, a weak_release that drops the last reference
    // deletes w without this lock (see there), so nothing here may touch w
    // after the bit unless it holds a reference.
    const bool call = w->has_callback && !(skip && skip(w, ctx)) && weak_try_acquire(w);
    w->prev = w->next = nullptr;
    w->linked = false;
    rmw_fetch_or(w->side, std::uintptr_t{1}, std::memory_order_release);
    if (call) batch.push(w);
    w = next;
  }
}

void clear_one(WeakObject* w) noexcept {
  SideTable* s = w->side_table();
  std::lock_guard<SpinLock> g(s->lock);
  rmw_fetch_or(s->word, kWeakCleared, std::memory_order_acq_rel);  // as above
  if (w->linked) unlink(s, w);
  rmw_fetch_or(w->side, std::uintptr_t{1}, std::memory_order_release);
}

std::size_t weak_count(ObjectHeader* h) noexcept {
  std::uint64_t x = h->word.load(std::memory_order_acquire);
  if (!(x & kSide)) return 0;
  SideTable* s = side_of(x);
  std::lock_guard<SpinLock> g(s->lock);
  std::size_t n = 0;
  for (WeakObject* w = s->head; w; w = w->next)
    if (w->refs.load(std::memory_order_relaxed) != 0) ++n;
  return n;
}

std::vector<WeakObject*> weak_list(ObjectHeader* h) {
  std::vector<WeakObject*> out;
  std::uint64_t x = h->word.load(std::memory_order_acquire);
  if (!(x & kSide)) return out;
  SideTable* s = side_of(x);
  // Never allocate under the side lock: size the vector, then fill it under
  // the lock if the list still fits, else grow and try again.
  for (;;) {
    std::size_t need = 0;
    {
      std::lock_guard<SpinLock> g(s->lock);
      for (WeakObject* w = s->head; w; w = w->next) ++need;
      if (need <= out.capacity()) {
        for (WeakObject* w = s->head; w; w = w->next)
          if (weak_try_acquire(w)) out.push_back(w);
        return out;
      }
    }
    out.reserve(need);
  }
}

// ---------------------------------------------------------------------------
// Callback batches

void CallbackBatch::push(WeakObject* w) noexcept {
  w->next = nullptr;
  if (tail_)
    tail_->next = w;
  else
    head_ = w;
  tail_ = w;
}

void CallbackBatch::run() noexcept {
  while (WeakObject* w = head_) {
    head_ = w->next;
    if (!head_) tail_ = nullptr;
    w->next = nullptr;
    try {
      w->invoke();
    } catch (...) {
      report_callback_exception(w);
    }
    weak_release(w);
  }
}

void CallbackBatch::drop() noexcept {
  while (WeakObject* w = head_) {
    head_ = w->next;
    if (!head_) tail_ = nullptr;
    w->next = nullptr;
    weak_release(w);
  }
}

// ---------------------------------------------------------------------------
// Text

void write_weak(std::ostream& os, const WeakObject* w) {
  const void* self = w;
  if (!w) {
    os << "<weakref at 0x0; empty>";
    return;
  }
  ObjectHeader* h = weak_lock(w);
  const bool proxy = w->kind == WeakKind::proxy;
  if (!h) {
    os << (proxy ? "<weakproxy at " : "<weakref at ") << self << "; dead>";
    return;
  }
  const char* name = type_name(*h->type->type);
  const void* obj = h->object();
  if (proxy)
    os << "<weakproxy at " << self << " to " << name << " at " << obj << '>';
  else
    os << "<weakref at " << self << "; to '" << name << "' at " << obj << '>';
  decref(h);
}

std::string weak_repr(const WeakObject* w) {
  std::ostringstream os;
  write_weak(os, w);
  return os.str();
}

void report_callback_exception(const WeakObject* w) noexcept {
  std::string what;
  try {
    what = "weakref callback of " + weak_repr(w);
  } catch (...) {
  }
  write_unraisable(std::current_exception(), "Exception ignored in", std::move(what));
}

}  // namespace weakref::detail
