// The object model: the header in front of every managed object, its
// reference-count word, and the side table that weak references point to.
//
// Layout of one block made by weakref::make<T>():
//
//     untraced T:   [ ObjectHeader 16 B ][ T ]
//     traced T:     [ GcHead 16 B ][ ObjectHeader 16 B ][ T ]
//
// (padding goes in front when alignof(T) > 16). The header is always the 16
// bytes right before the object, so the header of a complete object is found
// from its address alone.
//
// ObjectHeader::word is the object's count word (count_word.hpp: its layout,
// its two forms and the invariants of its count and flags): the strong
// count, heap index and flags until the first weak reference exists, then a
// pointer to the object's SideTable, whose word holds them from then on.
//
// Why a side table (as Swift does): the object's memory is freed as soon as
// the last strong reference goes, but weak references live on. They must
// "increment the count if not zero" on memory that outlives the object; the
// side table is that memory. It is freed when the object is gone and the last
// weak reference object pointing at it is gone (SideTable::weak).
//
// Invariants
//  * The count word's: count_word.hpp.
//  * Only the thread that owns the last strong reference runs the death;
//    everything about a death is in src/object.cpp.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <typeinfo>

#include "atomics.hpp"
#include "config.hpp"
#include "count_word.hpp"
#include "dcheck.hpp"
#include "locks.hpp"
#include "reflect.hpp"

namespace weakref::gc {
class Visitor;
}

namespace weakref::detail {

struct ObjectHeader;
struct SideTable;
struct WeakObject;

// Per-type constant data, one instance per T given to make<T>().
struct TypeInfo {
  void (*destroy)(ObjectHeader*) noexcept;    // runs ~T, frees the block
  void (*trace)(void* object, gc::Visitor&);  // null: not tracked
  void (*finalize)(void* object);             // T::tp_finalize or null
  const std::type_info* type;
  std::size_t size;        // sizeof(T)
  std::size_t block_size;  // bytes allocated for the whole block (a
                           // multiple of align: the header stays aligned)
  std::size_t offset;      // from block start to the object
  std::size_t align;       // alignment of the block
  // Throws the object's address as a T* (T: the type given to make<T>), so
  // that `catch (Base*)` converts it to any unambiguous public base, for
  // checked casts from Strong<void> or a non-polymorphic type (strong.hpp).
  void (*throw_pointer)(void* object);
};

// The collector's link, in front of the header of traced objects. Same shape
// as CPython's PyGC_Head: `prev` carries flag bits and, during a collection,
// the object's gc_refs; see src/gc/collect.cpp.
struct GcHead {
  GcHead* next;
  std::uintptr_t prev;
};
static_assert(sizeof(GcHead) == 16);

struct alignas(16) ObjectHeader {
  std::atomic<std::uint64_t> word;  // a HeaderWord (count_word.hpp)
  const TypeInfo* type;

  // The count word as it is now (count, heap index, flags): one load of
  // this header's word, then of the side table's if it points there. A
  // second load of the header's word could find the side form instead of
  // the inline word read first. Below, after SideTable.
  ActiveWord count_word(std::memory_order mo = std::memory_order_acquire) const noexcept;
  // The word where the count lives now: this header's, or its side table's
  // once it has one. Only while no other thread can make the object's first
  // weakref (its count is 0, or no other thread holds it): otherwise the
  // header's word may switch to the side form after this returns, and a load
  // or update of it would see a pointer. Elsewhere: count_word() to read, and
  // to update, a CAS on the header's inline word that follows the side form
  // when it appears (incref, decref).
  std::atomic<std::uint64_t>& active_word() noexcept;

  void* object() noexcept { return this + 1; }
  GcHead* gc() noexcept { return reinterpret_cast<GcHead*>(this) - 1; }
  bool traced() const noexcept { return type->trace != nullptr; }
  static ObjectHeader* from_object(const void* p) noexcept {
    return const_cast<ObjectHeader*>(static_cast<const ObjectHeader*>(p)) - 1;
  }
  static ObjectHeader* from_gc(GcHead* g) noexcept {
    return reinterpret_cast<ObjectHeader*>(g + 1);
  }
};
static_assert(sizeof(ObjectHeader) == 16, "the header must stay 16 bytes");

// Created on the first weak reference to an object, together with that
// weakref: both are initialised (the weakref linked, `weak` counting it)
// before the header's compare-and-swap publishes them, so making the first
// weakref takes no lock and no other read-modify-write. When that weakref
// is a ref, proxy, WeakMethod or finalizer, both are one allocation (the
// side table in front, `block`), freed when the side table is; a weak
// container's entry makes a side table of its own, from pages of side
// tables only (lookups touch side tables two to a line). 32 bytes.
//
// `head` is the object's weakref list (src/weak_object.cpp keeps it in
// CPython's order: basic ref, basic proxy, then the others newest first),
// and the side table's lock.
//  * The lock (lock(), unlock(): a SideTable is BasicLockable) is bit 2 of
//    `head` (kHeadLocked), a bit lock (locks.hpp), behind the fork gate
//    like every library lock. It guards the list: `head` and every listed
//    WeakObject's prev/next/linked/lent/pin.
//  * `head` changes only under the lock, or by one compare-and-swap from a
//    value without kHeadLocked that says all its critical section needs to
//    know: linking a weakref into an empty list, and unlinking the lone
//    weakref of a list (src/weak_object.cpp: attach_weak, and
//    unlink_alone for weak_detach_sole and a weakref's last release; the
//    usual insertion and removal of a weak container's entry). Such a swap
//    is a whole critical section in one instruction: it needs no fork gate.
//  * Bit 0 (kHeadPinned) says that the head is the object's live basic ref
//    and that the side table pins it: holds one reference on it until the
//    object dies, so that ref(obj) on an object that has a basic ref is a
//    load of `head` and one increment, without the lock (weak_object.hpp,
//    basic_ref). Bit 1 (kHeadOthers) says that the list holds another
//    weakref behind its head, or that its head is lent (below). A head
//    that is not the pinned basic ref and has neither bit is alone in the
//    list, and nobody has taken a reference on it under the lock since it
//    was linked (getweakrefs: its `lent` mark), so that its lone holder
//    may unlink it with one swap.
struct SideTable {
  std::atomic<std::uint64_t> word;      // a SideWord: count, heap index, flags
  ObjectHeader* const object;           // identity; dangling once dead
  std::atomic<std::uint32_t> weak{1};   // WeakObjects here + 1 while alive
  std::uint8_t block = 0;               // 0: a block of its own (side-table
                                        // pages); n: the front of an n*8-byte
                                        // block, the rest being the object's
                                        // first weakref (weak_memory)
  std::atomic<std::uintptr_t> head{0};  // WeakObject* | kHeadPinned, kHeadOthers,
                                        // kHeadLocked

  explicit SideTable(ObjectHeader* o, SideWord w) noexcept : word(w.raw()), object(o) {}
  // With its first weakref already in place (src/weak_object.cpp,
  // first_basic): each field written once.
  SideTable(ObjectHeader* o, SideWord w, std::uint32_t units, std::uint8_t block_units,
            std::uintptr_t first) noexcept
      : word(w.raw()), object(o), weak(units), block(block_units), head(first) {}
  // From the library's small-block allocator (src/alloc.cpp).
  WEAKREF_API static void* operator new(std::size_t size);
  WEAKREF_API static void operator delete(void* p, std::size_t size) noexcept;

  // The side lock (above): a bit lock (locks.hpp). lock() returns `head`
  // as it locked it (kHeadLocked clear), which the critical sections read
  // instead of loading `head` again.
  inline std::uintptr_t lock() noexcept;
  inline void unlock() noexcept;
};

static_assert(sizeof(void*) != 8 || sizeof(SideTable) == 32,
              "the side table must stay one 32-byte block");

// SideTable::head, bit 0: the head is the live basic ref, pinned.
inline constexpr std::uintptr_t kHeadPinned = 1;
// SideTable::head, bit 1: the head has a successor in the list, or it is
// lent and not the live pinned basic ref (above).
inline constexpr std::uintptr_t kHeadOthers = 2;
// SideTable::head, bit 2: the side lock is held.
inline constexpr std::uintptr_t kHeadLocked = 4;
inline constexpr std::uintptr_t kHeadBits = 7;

std::uintptr_t SideTable::lock() noexcept { return bit_lock<kHeadLocked>(head); }
void SideTable::unlock() noexcept { bit_unlock<kHeadLocked>(head); }

[[gnu::always_inline]] inline std::atomic<std::uint64_t>& ObjectHeader::active_word() noexcept {
  const HeaderWord w{word.load(std::memory_order_acquire)};
  return w.has_side() ? w.side()->word : word;
}
[[gnu::always_inline]] inline ActiveWord ObjectHeader::count_word(
    std::memory_order mo) const noexcept {
  const HeaderWord w{word.load(std::memory_order_acquire)};
  return ActiveWord(w.has_side() ? w.side()->word.load(mo) : w.raw());
}

inline constexpr std::uint32_t kNoHeap = 0;      // untraced objects
inline constexpr std::uint32_t kOrphanHeap = 1;  // objects of exited threads

// The index of the calling thread's collector heap (kNoHeap before it makes
// its first traced object).
WEAKREF_API extern constinit thread_local std::uint32_t tls_heap_index;

// Whether an increment of inline word w on this thread must take the slow
// path: side form, frozen, or a first copy of a traced object on a thread
// that does not own it. tls_heap_index is the thread's own heap, even while
// it holds a SharedHeap: the objects of shared heaps carry kShared from the
// start (src/heap.hpp), so they take the fast path on every thread.
[[gnu::always_inline]] inline bool incref_needs_slow_path(HeaderWord w) noexcept {
  if (w.has_any(HeaderWord::kSide, HeaderWord::kFrozen)) return true;
  const std::uint32_t heap = w.heap();
  return heap != kNoHeap && !w.shared() && heap != tls_heap_index;
}

// Slow paths and the death protocol, in src/object.cpp.
WEAKREF_API void incref_slow(ObjectHeader* h) noexcept;
// decref_side() for a header word w in side form, out of line (decref
// stays small).
WEAKREF_API void decref_side_word(std::uint64_t w) noexcept;
WEAKREF_API void die(ObjectHeader* h) noexcept;
// Drops `units` units of s->weak; the last one frees s.
WEAKREF_API void side_release(SideTable* s, std::uint32_t units = 1) noexcept;
// Frees s (with its block, see SideTable::block; src/weak_object.cpp).
WEAKREF_API void free_side(SideTable* s) noexcept;
inline constexpr std::size_t kSideBlockUnit = 8;  // SideTable::block's unit
WEAKREF_API bool incref_if_alive(ObjectHeader* h) noexcept;
WEAKREF_API std::uint32_t use_count(const ObjectHeader* h) noexcept;

// Strong count +1. The caller already holds a strong reference.
// Loads of `word` are acquire: a side form published by another thread must
// be seen with the side table it points to (free on x86).
inline void incref(ObjectHeader* h) noexcept {
  // The raw word, wrapped where it is read: the CAS updates it in place, and
  // g++ allocates registers worse around a HeaderWord copy of it.
  std::uint64_t w = h->word.load(std::memory_order_acquire);
  for (;;) {
    WEAKREF_DCHECK(HeaderWord(w).has_side() || HeaderWord(w).count() > 0,
                   "incref of an object whose count is 0 (the caller holds no reference)");
    if (incref_needs_slow_path(HeaderWord(w))) [[unlikely]] {
      incref_slow(h);
      return;
    }
    if (rmw_compare_exchange(h->word, w, HeaderWord(w).plus().raw(), std::memory_order_acquire,
                             std::memory_order_acquire))
      return;
  }
}

// Strong count -1 on a side word; the last one starts the object's death on
// this thread.
inline void decref_side(SideTable* s) noexcept {
  const SideWord old{rmw_fetch_sub(s->word, SideWord::kOne, std::memory_order_acq_rel)};
  WEAKREF_DCHECK(old.count() > 0, "decref of an object whose count is 0 (side word)");
  if (old.count() == 1) die(s->object);
}

// Strong count -1; the last one starts the object's death on this thread.
inline void decref(ObjectHeader* h) noexcept {
  std::uint64_t w = h->word.load(std::memory_order_acquire);  // (as in incref)
  for (;;) {
    if (HeaderWord(w).has_side()) [[unlikely]] {
      decref_side_word(w);
      return;
    }
    WEAKREF_DCHECK(HeaderWord(w).count() > 0, "decref of an object whose count is 0");
    if (rmw_compare_exchange(h->word, w, HeaderWord(w).minus().raw(), std::memory_order_acq_rel,
                             std::memory_order_acquire)) {
      if (HeaderWord(w).count() == 1) die(h);
      return;
    }
  }
}

// Where a Strong's unit of count lives. Usually the object's header (whose
// word may send the operation on to the side table); a Strong made by a weak
// lock keeps instead the side table itself, tagged with kCountAtSide, so
// that its copies and its release work on the side word without reading the
// header's line (the weak containers' lookups touch the entry and the side
// table, nothing else). Both forms count the same unit of the same count;
// header_of() gives the object's header for everything else (identity,
// type, the collector).
using CountRef = std::uintptr_t;
inline constexpr CountRef kCountAtSide = 1;

inline CountRef count_ref(ObjectHeader* h) noexcept { return reinterpret_cast<CountRef>(h); }
inline CountRef count_ref(SideTable* s) noexcept {
  return reinterpret_cast<CountRef>(s) | kCountAtSide;
}
inline SideTable* side_of_ref(CountRef r) noexcept {
  return reinterpret_cast<SideTable*>(r & ~kCountAtSide);
}
inline ObjectHeader* header_of(CountRef r) noexcept {
  if (r & kCountAtSide) [[unlikely]]
    return side_of_ref(r)->object;
  return reinterpret_cast<ObjectHeader*>(r);
}

// Strong count +1 on a side word (the caller holds a strong reference).
WEAKREF_API void incref_side(SideTable* s) noexcept;

inline void incref(CountRef r) noexcept {
  if (r & kCountAtSide) [[unlikely]]
    incref_side(side_of_ref(r));
  else
    incref(reinterpret_cast<ObjectHeader*>(r));
}

inline void decref(CountRef r) noexcept {
  if (r & kCountAtSide)
    decref_side(side_of_ref(r));
  else
    decref(reinterpret_cast<ObjectHeader*>(r));
}

// ---------------------------------------------------------------------------
// Allocation of blocks and per-type information.

// Traced by the collector: a trace() member or free function, or a plain
// aggregate (or std wrapper) holding what the collector must see, traced
// automatically (reflect.hpp).
template <class T>
concept Traceable = HasMemberTrace<T> || HasFreeTrace<T> || auto_traced<T>;
template <class T>
concept HasFinalize = requires(T& t) {
  t.tp_finalize();
};

WEAKREF_API void* allocate_block(const TypeInfo& info);
// Whether small blocks come from the library's pages (src/alloc.cpp); false
// when a memory tool watches the process (AddressSanitizer, LeakSanitizer,
// valgrind; or WEAKREF_ALLOCATOR=system): they go to operator new then.
WEAKREF_API bool pools_enabled() noexcept;
WEAKREF_API void free_block(void* block, const TypeInfo& info) noexcept;
// The small-block allocator (src/alloc.hpp), called directly for a block
// aligned to 16 bytes or less that needs nothing else (allocate_block and
// free_block would only pass the size on): make<T> of an untraced T, and
// every such T's destroy. Blocks above its size limit go to operator new.
WEAKREF_API void* pool_allocate(std::size_t size);
WEAKREF_API void pool_deallocate(void* block, std::size_t size) noexcept;
// Links a fully constructed traced object into the calling thread's heap.
WEAKREF_API void track(ObjectHeader* h) noexcept;
// Runs an automatic collection if the thread's thresholds say so; called
// before a traced object is allocated (as CPython does).
WEAKREF_API void gc_on_allocate() noexcept;
// Unraisable-exception path for exceptions escaping tp_finalize.
WEAKREF_API void report_finalize_exception(ObjectHeader* h) noexcept;

// Untraced objects remembered for gc::find_untraced_holders()
// (forensics.hpp, src/forensics.cpp): while gc::track_untraced(true) is on,
// make<T> remembers the objects of untraced class types and gives them
// TypeInfoFor<T>::remembered, whose destroy forgets them (so the usual
// destroy has no check, and tracking turned off meanwhile changes nothing).
WEAKREF_API extern std::atomic<bool> untraced_tracking;
WEAKREF_API void remember_untraced(ObjectHeader* h) noexcept;
WEAKREF_API void forget_untraced(ObjectHeader* h) noexcept;
template <class T>
inline constexpr bool remembered_when_untraced = std::is_class_v<T> && !Traceable<T>;

inline constexpr std::size_t kHeaderSpace = sizeof(ObjectHeader);
inline constexpr std::size_t kGcSpace = sizeof(GcHead);

constexpr std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }

template <class T>
constexpr std::size_t block_align() {
  return alignof(T) > 16 ? alignof(T) : 16;
}
template <class T>
constexpr std::size_t object_offset() {
  constexpr std::size_t prefix = kHeaderSpace + (Traceable<T> ? kGcSpace : 0);
  return round_up(prefix, block_align<T>());
}

template <class T, class V = gc::Visitor>
inline constexpr bool visitor_defined = requires {
  sizeof(V);
};

template <class T>
void trace_thunk(void* p, gc::Visitor& v) {
  if constexpr (HasMemberTrace<T>) {
    static_cast<T*>(p)->trace(v);
  } else if constexpr (HasFreeTrace<T>) {
    trace(*static_cast<T*>(p), v);
  } else {
    static_assert(visitor_defined<T>,
                  "weakref::make<T>: T is traced automatically (it holds Strong<> or weak "
                  "members and has no trace()): include <weakref/gc.hpp> (or "
                  "<weakref/weakref.hpp>) where it is made");
    v(*static_cast<T*>(p));
  }
}

template <class T>
void finalize_thunk(void* p) {
  static_cast<T*>(p)->tp_finalize();
}

template <class T>
void destroy_thunk(ObjectHeader* h) noexcept;
template <class T>
void free_unconstructed_thunk(ObjectHeader* h) noexcept;
template <class T>
void destroy_remembered_thunk(ObjectHeader* h) noexcept;

template <class T>
[[noreturn]] void throw_pointer_thunk(void* p) {
  throw static_cast<T*>(p);
}
// What a block whose T constructor threw is (make<T>): no T, so no cast to
// T succeeds, and it prints as <weakref::detail::Unconstructed<T> ...>.
template <class T>
struct Unconstructed {};

template <class T>
constexpr void (*trace_fn())(void*, gc::Visitor&) {
  if constexpr (Traceable<T>)
    return &trace_thunk<T>;
  else
    return nullptr;
}
template <class T>
constexpr void (*finalize_fn())(void*) {
  if constexpr (HasFinalize<T>)
    return &finalize_thunk<T>;
  else
    return nullptr;
}

template <class T>
struct TypeInfoFor {
  static constexpr TypeInfo value{
      &destroy_thunk<T>,
      trace_fn<T>(),
      finalize_fn<T>(),
      &typeid(T),
      sizeof(T),
      round_up(object_offset<T>() + sizeof(T), block_align<T>()),
      object_offset<T>(),
      block_align<T>(),
      &throw_pointer_thunk<T>,
  };
  // The type of a block whose T constructor threw (make<T>): its last
  // release (make's own, unless Strongs made by self(this) escaped the
  // constructor) runs the weakref callbacks and frees it, without ~T or
  // tp_finalize (no T was made); it is never traced.
  static constexpr TypeInfo unconstructed{
      &free_unconstructed_thunk<T>,
      nullptr,
      nullptr,
      &typeid(Unconstructed<T>),
      sizeof(T),
      value.block_size,
      value.offset,
      value.align,
      &throw_pointer_thunk<Unconstructed<T>>,
  };
  // The type of an untraced object remembered for find_untraced_holders():
  // its destroy forgets it first (see untraced_tracking, below).
  static constexpr TypeInfo remembered{
      &destroy_remembered_thunk<T>,
      value.trace,
      value.finalize,
      value.type,
      value.size,
      value.block_size,
      value.offset,
      value.align,
      value.throw_pointer,
  };
};

// The block of a new T: straight from the pools when allocate_block would
// only pass the size on (no GcHead to clear, no alignment above 16).
template <class T>
[[gnu::always_inline]] inline void* allocate_block_of() {
  if constexpr (Traceable<T> || block_align<T>() > 16)
    return allocate_block(TypeInfoFor<T>::value);
  else
    return pool_allocate(TypeInfoFor<T>::value.block_size);
}

// Frees the block of a T (allocate_block_of's).
template <class T>
[[gnu::always_inline]] inline void free_block_of(void* block) noexcept {
  if constexpr (block_align<T>() > 16)
    free_block(block, TypeInfoFor<T>::value);
  else
    pool_deallocate(block, TypeInfoFor<T>::value.block_size);
}

template <class T>
void destroy_thunk(ObjectHeader* h) noexcept {
  static_assert(std::is_nothrow_destructible_v<T>,
                "weakref::make<T>: T's destructor must not throw");
  T* p = static_cast<T*>(h->object());
  p->~T();
  free_block_of<T>(reinterpret_cast<char*>(p) - TypeInfoFor<T>::value.offset);
}

template <class T>
void destroy_remembered_thunk(ObjectHeader* h) noexcept {
  forget_untraced(h);
  destroy_thunk<T>(h);
}

template <class T>
void free_unconstructed_thunk(ObjectHeader* h) noexcept {
  free_block_of<T>(static_cast<char*>(h->object()) - TypeInfoFor<T>::value.offset);
}

// Demangled type name ("ns::Node"), cached per type_info.
WEAKREF_API const char* type_name(const std::type_info& t) noexcept;

}  // namespace weakref::detail
