// The weak containers' control block and entry weakrefs. The protocol (who
// may touch what, on which thread) is at the top of
// include/weakref/detail/entry_weak.hpp; this file keeps its two lock-free
// halves:
//
//  * EntryWeak::invoke, run on the dying thread: claim the entry, push it
//    (the push counts it). It never blocks and never touches the table.
//  * control_take / control_close, run by the owner: take the whole stack
//    with one exchange (acquire, pairing with the pushers' release CAS, so
//    the `prev` links written before a push are visible), and take back
//    from queued_extra what the stack held beyond the 7 its head counts.
#include <mutex>
#include <ostream>
#include <stdexcept>

#include "weakref/detail/entry_weak.hpp"
#include "weakref/detail/key_repr.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/weak_table.hpp"
#include "weakref/errors.hpp"

namespace weakref::detail {

ContainerControl* control_create() { return new ContainerControl; }

void control_release(ContainerControl* c) noexcept {
  if (rmw_fetch_sub(c->refs, 1U, std::memory_order_acq_rel) == 1) delete c;
}

namespace {

// The stack h, taken off c->head: its pushes beyond the 7 that h counted
// each added one to queued_extra, which goes back down by as many.
EntryWeak* taken_stack(ContainerControl* c, std::uintptr_t h) noexcept {
  auto* w = reinterpret_cast<EntryWeak*>(h & ~kQueueCount);
  if ((h & kQueueCount) == kQueueCount) [[unlikely]] {
    std::ptrdiff_t n = 0;
    for (const EntryWeak* p = w; p; p = p->queue_next()) ++n;
    rmw_fetch_sub(c->queued_extra, n - static_cast<std::ptrdiff_t>(kQueueCount),
                  std::memory_order_relaxed);
  }
  return w;
}

}  // namespace

EntryWeak* control_take(ContainerControl* c) noexcept {
  std::uintptr_t h;
  if (single_threaded()) {  // no pusher but this thread (config.hpp)
    h = c->head.load(std::memory_order_relaxed);
    c->head.store(0, std::memory_order_relaxed);
  } else {
    h = c->head.exchange(0, std::memory_order_acquire);
  }
  return taken_stack(c, h);
}

EntryWeak* control_close(ContainerControl* c) noexcept {
  std::uintptr_t h = c->head.exchange(kQueueClosed, std::memory_order_acquire);
  return h == kQueueClosed ? nullptr : taken_stack(c, h);
}

std::ptrdiff_t control_queued_in(const ContainerControl* c) noexcept {
  // One load of head, then its stack: the nodes below it no longer change
  // (only the owner takes them).
  const std::uintptr_t h = c->head.load(std::memory_order_acquire);
  if (h == kQueueClosed) return 0;
  std::ptrdiff_t n = 0;
  for (auto* w = reinterpret_cast<const EntryWeak*>(h & ~kQueueCount); w; w = w->queue_next())
    n += !(w->ctrl_state.load(std::memory_order_relaxed) & kEntryOut);
  return n;
}

EntryWeak::EntryWeak(ContainerControl* c) noexcept
    : WeakObject(WeakKind::container, true), ctrl_state(reinterpret_cast<std::uintptr_t>(c)) {
  rmw_fetch_add(c->refs, 1U, std::memory_order_relaxed);
}

EntryWeak::~EntryWeak() { control_release(control()); }

void EntryWeak::invoke() {
  // Runs once, on the dying thread, after every weakref of the referent was
  // cleared (so `prev` is ours, see the top of entry_weak.hpp). Our batch
  // holds a reference meanwhile.
  if (!entry_claim(this)) return;  // the owner removed it (meanwhile)
  entry_queue(this);
}

std::uintptr_t entry_mark_out(EntryWeak* w) noexcept {
  // An entry weakref keeps its side table (a unit, shared while linked), and
  // `side` does not change once set (but for its low bits). Not attached
  // (a failed insertion): nobody else can see it.
  if (SideTable* s = w->side_table(); s && !w->cleared()) {
    std::lock_guard<SideTable> g(*s);
    if (w->linked) {
      const std::uintptr_t st = w->ctrl_state.load(std::memory_order_relaxed);
      w->ctrl_state.store(st | kEntryOut, std::memory_order_relaxed);
      return st;
    }
  }
  return rmw_fetch_or(w->ctrl_state, kEntryOut, std::memory_order_acq_rel);
}

void entry_queue(EntryWeak* w) noexcept {
  // The entry's reference is the queue's from now on (the owner no longer
  // releases it once it sees kEntryDead). One CAS pushes and counts. Past
  // it, neither w nor the control block is ours (the owner may drain w and
  // the container go): a push beyond the head's count adds to queued_extra
  // before it, and takes the add back if a retry finds the stack taken (so
  // control_queued may read one high for a moment, never low).
  ContainerControl* c = w->control();
  std::uintptr_t old = c->head.load(std::memory_order_relaxed);
  bool extra = false;
  for (;;) {
    const std::uintptr_t n = old == kQueueClosed ? 0 : old & kQueueCount;
    if ((n == kQueueCount) != extra) [[unlikely]] {
      extra = !extra;
      rmw_fetch_add(c->queued_extra, std::ptrdiff_t{extra ? 1 : -1}, std::memory_order_relaxed);
    }
    if (old == kQueueClosed) {  // the container is gone
      weak_release(w);          // (the last one, unless a batch or a handle holds w)
      return;
    }
    w->prev = reinterpret_cast<EntryWeak*>(old & ~kQueueCount);
    const std::uintptr_t top = reinterpret_cast<std::uintptr_t>(w) | (extra ? n : n + 1);
    if (rmw_compare_exchange(c->head, old, top, std::memory_order_release,
                             std::memory_order_relaxed))
      return;
  }
}

EntryWeak* entry_attach(ObjectHeader* h, ContainerControl* c, std::ptrdiff_t offset,
                        EntryWeak* spare) {
  EntryWeak* w = spare ? spare : new EntryWeak(c);
  w->offset = static_cast<std::int32_t>(offset);
  attach_weak(h, w);  // deletes w (dropping its control reference) on failure
  return w;
}

void throw_key_error(const std::string& key) { throw KeyError(key); }

void throw_length_error() { throw std::length_error("weak container too large"); }

std::ostream& write_container_address(std::ostream& os, const char* name, const void* self) {
  return os << '<' << name << " at " << self << '>';
}

}  // namespace weakref::detail
