// One weak reference object: what a Python weakref / proxy / WeakMethod /
// finalize's internal ref / container entry ref is. Public handles (ref<T>,
// proxy<T>, WeakMethod, ...) are counted pointers to a WeakObject, so copies
// of a handle are the same weakref object.
//
// Ownership and locking
//  * WeakObject::refs counts the handles and internal holders (a finalizer, a
//    container entry, a pending callback batch). The last release unlinks the
//    object from its referent's list and deletes it (running the callback's
//    destructor outside any lock).
//  * Every WeakObject owns one unit of SideTable::weak, so the side table
//    outlives it; `side` is therefore always safe to read. Bit 0 of `side`
//    marks a cleared weakref: set when its referent died or was found
//    garbage, or when the collector found the weakref itself garbage (its
//    referent may then live on). A cleared weakref never locks again.
//  * prev/next/linked belong to SideTable::lock. Once a WeakObject has been
//    cleared (unlinked by the referent's death), `next` is reused as the link
//    of a callback batch (CallbackBatch), owned by the dying thread.
//  * A callback runs at most once: only the batch that cleared the object
//    may run it.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "object.hpp"

namespace weakref::detail {

enum class WeakKind : std::uint8_t {
  ref,          // weakref::ref
  proxy,        // weakref::proxy
  method,       // weakref::WeakMethod
  finalizer,    // the ref inside a weakref::finalize
  container,    // an entry of a weak container
};

struct WEAKREF_API WeakObject {
  std::atomic<std::uintptr_t> side;   // SideTable*, bit 0: cleared alone
  std::atomic<std::uint32_t> refs{1};
  const WeakKind kind;
  const bool has_callback;
  bool linked = false;                // in side's list (under side lock)
  WeakObject* prev = nullptr;
  WeakObject* next = nullptr;

  WeakObject(WeakKind k, bool cb) noexcept : side(0), kind(k), has_callback(cb) {}
  WeakObject(const WeakObject&) = delete;
  WeakObject& operator=(const WeakObject&) = delete;
  virtual ~WeakObject();
  // From the library's small-block allocator (src/alloc.cpp); the sized
  // delete gets the dynamic size through the virtual destructor.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;
  // Runs the callback. Only called by a CallbackBatch, at most once.
  virtual void invoke() {}

  SideTable* side_table() const noexcept {
    return reinterpret_cast<SideTable*>(side.load(std::memory_order_acquire) &
                                        ~std::uintptr_t{1});
  }
};

WEAKREF_API void weak_release(WeakObject* w) noexcept;

// Callbacks gathered when referents die, run in order: newest first per
// referent, as CPython's PyObject_ClearWeakRefs / handle_weakrefs do. Each
// entry holds one reference to its WeakObject.
class WEAKREF_API CallbackBatch {
 public:
  CallbackBatch() = default;
  CallbackBatch(const CallbackBatch&) = delete;
  CallbackBatch& operator=(const CallbackBatch&) = delete;
  ~CallbackBatch() { run(); }
  void push(WeakObject* w) noexcept;
  bool empty() const noexcept { return head_ == nullptr; }
  // Runs and releases every gathered callback. Exceptions go to the
  // unraisable hook; the remaining callbacks still run.
  void run() noexcept;
  // Releases the gathered weakrefs without running their callbacks.
  void drop() noexcept;
  // Calls f(WeakObject*) for each gathered weakref, in order.
  template <class F>
  void for_each(F&& f) const {
    for (WeakObject* w = head_; w; w = w->next) f(w);
  }
  // Releases, without running their callbacks, the gathered weakrefs for
  // which pred(WeakObject*) is true.
  template <class Pred>
  void drop_if(Pred&& pred) noexcept {
    WeakObject** link = &head_;
    tail_ = nullptr;
    while (WeakObject* w = *link) {
      if (pred(w)) {
        *link = w->next;
        w->next = nullptr;
        weak_release(w);
      } else {
        tail_ = w;
        link = &w->next;
      }
    }
  }

 private:
  WeakObject* head_ = nullptr;
  WeakObject* tail_ = nullptr;
};

inline void weak_acquire(WeakObject* w) noexcept {
  rmw_fetch_add(w->refs, 1U, std::memory_order_relaxed);
}
WEAKREF_API void weak_release(WeakObject* w) noexcept;
// +1 on w unless its last holder is already releasing it.
WEAKREF_API bool weak_try_acquire(WeakObject* w) noexcept;

// The referent with +1 strong count, or null when it is dead or the weakref
// was cleared. A cleared weakref never locks again, so that case is decided
// inline (a dead ref's r() costs one load, as weak_ptr::lock()'s does).
// weak_lock_side() gives the referent's side table instead, for a Strong
// that keeps its count there (StrongAccess::adopt(p, SideTable*): its
// release then does not read the referent's header).
WEAKREF_API SideTable* weak_lock_uncleared(const WeakObject* w) noexcept;
inline SideTable* weak_lock_side(const WeakObject* w) noexcept {
  if (w->side.load(std::memory_order_acquire) & 1) return nullptr;
  return weak_lock_uncleared(w);
}
inline ObjectHeader* weak_lock(const WeakObject* w) noexcept {
  SideTable* s = weak_lock_side(w);
  return s ? s->object : nullptr;
}
WEAKREF_API bool weak_alive(const WeakObject* w) noexcept;
// Referent identity, stable after death (hash of a ref).
inline std::uintptr_t weak_identity(const WeakObject* w) noexcept {
  return reinterpret_cast<std::uintptr_t>(w->side_table()->object);
}

// Reuses the basic (callback-less) ref or proxy of h, or makes one.
// Caller holds a strong reference to h. Returns with +1 for the caller.
WEAKREF_API WeakObject* basic_weak(ObjectHeader* h, WeakKind kind);
// Links a new WeakObject (with refs == 1, owned by the caller) into h's list,
// after the basic ref and proxy (so callbacks run newest first).
WEAKREF_API void attach_weak(ObjectHeader* h, WeakObject* w);

// Called on death (refcount or collection): marks every weakref of the
// object cleared, unlinks them all, and pushes those with callbacks (still held by someone)
// into `batch`. `skip` filters weakrefs whose callback must be dropped (the
// collector's rule for weakrefs that are garbage themselves).
WEAKREF_API void clear_weakrefs(SideTable* s, CallbackBatch& batch,
                                bool (*skip)(WeakObject*, void*) = nullptr,
                                void* ctx = nullptr) noexcept;
// Clears one weakref on its own, without callback (collector).
WEAKREF_API void clear_one(WeakObject* w) noexcept;

// getweakrefcount / getweakrefs on a header (caller holds a strong ref).
WEAKREF_API std::size_t weak_count(ObjectHeader* h) noexcept;
WEAKREF_API std::vector<WeakObject*> weak_list(ObjectHeader* h);  // each +1

// CPython-style text of a weakref object (used by operator<< and by the
// unraisable hook).
WEAKREF_API void write_weak(std::ostream& os, const WeakObject* w);
WEAKREF_API std::string weak_repr(const WeakObject* w);

// Exception escaping a weakref callback -> unraisable hook.
WEAKREF_API void report_callback_exception(const WeakObject* w) noexcept;

// Calls f(handle) where handle is built by `Make` from a WeakObject* with a
// new reference; the callback subclass used by ref, proxy and WeakMethod.
template <class Handle, class F>
struct CallbackWeakObject final : WeakObject {
  F f;
  template <class G>
  CallbackWeakObject(WeakKind k, G&& g) : WeakObject(k, true), f(std::forward<G>(g)) {}
  void invoke() override {
    if constexpr (std::is_invocable_v<F&, Handle>) {
      weak_acquire(this);
      f(Handle::adopt_weak_object(this));
    } else {
      f();
    }
  }
};

// Access to a handle's WeakObject for the library's own components.
struct HandleAccess {
  template <class H>
  static WeakObject* get(const H& h) noexcept {
    return h.w_;
  }
  // Gives up the handle's reference without releasing it (collector).
  template <class H>
  static WeakObject* take(H& h) noexcept {
    return std::exchange(h.w_, nullptr);
  }
};

// Base of every public weak handle: one counted reference to a WeakObject.
class WEAKREF_API WeakHandle {
 public:
  // Identity: are both handles the same weakref object?
  bool is(const WeakHandle& other) const noexcept { return w_ == other.w_; }

 protected:
  WeakHandle() noexcept = default;
  explicit WeakHandle(WeakObject* adopted) noexcept : w_(adopted) {}
  WeakHandle(const WeakHandle& o) noexcept : w_(o.w_) {
    if (w_) weak_acquire(w_);
  }
  WeakHandle(WeakHandle&& o) noexcept : w_(o.w_) { o.w_ = nullptr; }
  WeakHandle& operator=(const WeakHandle& o) noexcept {
    WeakHandle(o).swap_handle(*this);
    return *this;
  }
  WeakHandle& operator=(WeakHandle&& o) noexcept {
    WeakHandle(std::move(o)).swap_handle(*this);
    return *this;
  }
  ~WeakHandle() {
    if (w_) weak_release(w_);
  }
  void swap_handle(WeakHandle& o) noexcept { std::swap(w_, o.w_); }
  void reset_handle() noexcept { WeakHandle().swap_handle(*this); }

  WeakObject* w_ = nullptr;
  friend struct HandleAccess;
};

}  // namespace weakref::detail
