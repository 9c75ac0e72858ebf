// weakref::SharedHeap: a collector heap that threads share, and moving
// objects between heaps (gc::adopt, SharedHeap::adopt, gc::disown).
//
//     weakref::SharedHeap scene;                     // outlives its users
//     {
//       std::lock_guard lock(scene);                 // on any thread
//       auto n = weakref::make<Node>();              // made into `scene`
//       root->children.push_back(n);                 // root is scene's too
//       n->parent = weakref::Strong<Node>(root);     // a cycle, in one heap
//     }
//     scene.collect();                               // any thread, any time
//
// Every thread has a heap of its own (gc.hpp, "Heaps and threads"): the
// traced objects it makes go there, only it writes their traced members, and
// a cycle spanning two live threads' heaps is collected only once both have
// exited. A SharedHeap is a heap no thread owns, guarded by a lock of its
// own, so that a graph several threads edit (a scene, a document, a job
// graph) can be one heap whose cycles are collected while every thread
// lives. Adoption moves a subgraph from one heap to another, so that a
// worker may build objects and hand them to their owner.
//
// Lifetime rules
//  * A SharedHeap is Lockable (std::lock_guard, std::unique_lock,
//    std::scoped_lock), recursively on one thread: lock() / unlock() pairs
//    nest. held() says whether the calling thread holds it. Its lock is not
//    behind the library's fork gate: a child forked while another thread
//    held it must not use it (as any std::mutex).
//  * Making: while a thread holds SharedHeaps, the traced objects it makes
//    (make<T>() of a traced T) go into the innermost one, the one whose
//    lock() it called last and has not yet undone. Untraced objects belong
//    to no heap, wherever they are made.
//  * Writing: a thread may assign the traced members (Strong<> and weak
//    members that trace() visits) of an object of a SharedHeap only while it
//    holds that heap. (Under the build option WEAKREF_CHECK_THREADS, a write
//    by a thread that may not write stops the program with a message.)
//  * Reading: read the traced members of its objects while holding it too
//    (members nobody writes any more, such as those set before the object
//    was published under the lock, may be read without it); the Strongs
//    copied out stay valid after unlock() and may be used, copied and
//    dropped on any thread, like any Strong; weakrefs to its objects may be
//    locked on any thread at any time.
//  * Collecting: collect() takes the lock for the whole collection (steps
//    1-9 of src/gc/collect.cpp); the garbage's weakref callbacks, finalizers
//    and destructors run on the collecting thread, which holds the lock
//    meanwhile (they may lock it again). Allocations into the heap count
//    towards its own thresholds (gc::set_threshold): past them, the thread
//    making the object collects it, as it collects its own heap. A
//    gc::collect() on a thread that holds SharedHeaps also collects them
//    (gc::get_count() stays the thread's own heap's).
//  * Adopting: heap.adopt(root), while holding heap, moves root and the
//    traced objects reachable from it through strong references that the
//    caller may hand over (those of its own thread's heap, and objects of no
//    thread: disowned ones, or those left by exited threads) into the heap.
//    gc::adopt(root) moves them into the calling thread's own heap. The walk
//    stops at objects of other heaps, which stay where they are. A root of
//    another live thread's heap, or of a SharedHeap the caller does not
//    hold, is an error (another thread may be writing it): nothing moves
//    (under WEAKREF_CHECK_THREADS the program stops).
//  * Disowning: gc::disown(root) moves the calling thread's own objects
//    reachable from root (walked as for adopt) to the heap of no thread,
//    for another thread or a SharedHeap to adopt; the caller must not write
//    them any more (it may still read them and hold them).
//  * Destroying: the heap must not be held by any thread (so no collection
//    of it runs). Its objects live on, in the heap of no thread, collected
//    by any thread's full collection and adoptable; its index is reused.
//
// Costs: a program that never uses a SharedHeap pays one thread_local load
// per traced make<T>(). An object of a shared heap costs nothing more to
// copy or drop; a collection of a shared heap verifies its garbage against
// other threads (src/gc/verify.cpp), as for objects copied across threads.
// An adoption holds the locks of the heaps involved while it walks (as a
// collection does): deaths of their objects on other threads wait for it.
// docs/threads.md has the model; docs/design.md the locks.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

#include "detail/config.hpp"
#include "strong.hpp"

namespace weakref {

class SharedHeap;

namespace detail {
struct Heap;
// Moves what root reaches (SharedHeap's header comment) into `into`, or
// into the calling thread's own heap when it is null; or, when `disown`,
// the calling thread's own objects to the orphan heap. src/shared_heap.cpp.
WEAKREF_API std::size_t move_reachable(ObjectHeader* root, SharedHeap* into, bool disown);
}  // namespace detail

/// A collector heap no thread owns: threads make objects into it and write
/// their traced members while holding its lock; any thread collects it
/// (taking the lock). The header comment of weakref/shared_heap.hpp has the
/// rules. Not copyable, not movable.
class SharedHeap {
 public:
  /// Registers a heap of its own. Throws std::bad_alloc, or
  /// std::length_error when every heap index (65535) is in use.
  WEAKREF_API SharedHeap();
  /// Requires that no thread holds it. Its objects move to the heap of no
  /// thread (collected by any full collection, adoptable); its index is
  /// reused.
  WEAKREF_API ~SharedHeap();
  SharedHeap(const SharedHeap&) = delete;
  SharedHeap& operator=(const SharedHeap&) = delete;

  /// Takes the lock (recursive on one thread). While the calling thread
  /// holds it (the innermost one, if it holds several), the traced objects
  /// it makes go into this heap, and it may write the traced members of this
  /// heap's objects. Throws std::bad_alloc (then it does not hold it more).
  WEAKREF_API void lock();
  /// lock() if it can without waiting; true if it did.
  WEAKREF_API bool try_lock();
  /// Undoes one lock() of the calling thread's.
  WEAKREF_API void unlock() noexcept;
  /// Whether the calling thread holds the lock.
  bool held() const noexcept {
    return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

  /// Requires held(): moves root and every traced object reachable from it
  /// through strong references that the caller may hand over (objects of the
  /// calling thread's own heap, and objects of no thread: disowned, or left
  /// by exited threads) into this heap; returns how many moved. The walk
  /// stops at objects of other heaps (left where they are). Throws
  /// std::logic_error unless held(), std::bad_alloc (then nothing moved).
  template <class T>
  std::size_t adopt(const Strong<T>& root) {
    detail::ObjectHeader* h = detail::StrongAccess::header(root);
    return h ? detail::move_reachable(h, this, false) : 0;
  }

  /// Collects this heap (generations 0..generation), taking its lock;
  /// callbacks, finalizers and deaths of its garbage run on the calling
  /// thread (which holds the lock meanwhile, recursive: they may take it
  /// again). Returns the number of unreachable objects, as gc::collect:
  /// 0 at once when called from inside a collection on this thread. Throws
  /// std::invalid_argument ("invalid generation") unless 0 <= generation <= 2.
  WEAKREF_API std::size_t collect(int generation = 2);

 private:
  friend std::size_t detail::move_reachable(detail::ObjectHeader*, SharedHeap*, bool);
  // The calling thread has just taken mu_: makes it the owner (and gives
  // mu_ back, rethrowing, when the held list cannot grow).
  void enter_locked();
  detail::Heap* heap_;
  std::mutex mu_;
  std::atomic<std::thread::id> owner_{};
  std::size_t depth_ = 0;  // lock() calls of the owner not undone
};

namespace gc {

/// Moves root and what is reachable from it that the caller may hand over
/// (see SharedHeap::adopt) into the calling thread's own heap; returns how
/// many moved. Throws std::bad_alloc (then nothing moved).
template <class T>
std::size_t adopt(const Strong<T>& root) {
  weakref::detail::ObjectHeader* h = weakref::detail::StrongAccess::header(root);
  return h ? weakref::detail::move_reachable(h, nullptr, false) : 0;
}

/// The calling thread gives up the objects of its own heap reachable from
/// root (walked as for adopt): they move to the heap of no thread (the
/// orphan heap), for another thread or a SharedHeap to adopt. Returns how
/// many moved. The caller must not write them afterwards. Throws
/// std::bad_alloc (then nothing moved).
template <class T>
std::size_t disown(const Strong<T>& root) {
  weakref::detail::ObjectHeader* h = weakref::detail::StrongAccess::header(root);
  return h ? weakref::detail::move_reachable(h, nullptr, true) : 0;
}

}  // namespace gc
}  // namespace weakref
