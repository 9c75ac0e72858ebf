// fork() from a process whose threads use the library.
//
// The problem: a child process has only the thread that called fork(). A
// library lock that another thread held at that moment stays held in the
// child for ever (its holder does not exist there), and the data it guarded
// may be half-updated: the child hangs, or worse. The library's locks are
// the heap locks, the allocator's registry, the gc module's, the finalize
// registry's, the unraisable hook's, a few caches -- and the spin lock of
// every weakly referenced object's side table, which cannot be listed, so
// locking them all before forking (glibc's way for malloc's arenas) is no
// answer.
//
// The fork gate (weakref/detail/fork_gate.hpp): every library lock is taken
// inside gate_enter()/gate_leave(), which count the locks the calling thread
// holds in its ForkGateRecord (one per thread, reused after it exits; a
// thread without one -- no memory for it, or at thread exit -- counts in
// g_heavy instead). A pthread_atfork "prepare" handler closes the gate and
// waits until every other thread's count is 0; an outermost gate_enter that
// finds the gate closed backs off and waits until it opens; nested ones go
// on (their thread is inside, the fork waits for it to come out). So at the
// moment of the fork no other thread is inside a library lock, and the
// child starts with every lock free and every structure whole. The parent
// and child handlers open the gate again.
//
// Ordering (a store-buffering pattern): an entering thread stores its count
// and then loads the gate; the forking thread stores the gate and then loads
// the counts. Each side needs a full fence between its store and its load.
// The entering side, the hot one, has only a compiler fence; the forking
// side calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which runs a full
// fence on every thread of the process (Linux >= 4.14), so that either the
// entering thread saw the gate closed or its count is visible to the fork.
// Without membarrier (other systems, old kernels, sandboxes, valgrind),
// fork_gate carries kGateFenced from start-up and every outermost enter
// takes the slow path, which stores its count again sequentially
// consistent before it reads the gate (the fork side's store and loads
// are too: the total order then does what the fences would).
//
// Cost: an outermost lock on a thread adds a thread-local load, two plain
// stores and a load of fork_gate (shared, read-mostly); a single-threaded
// process does none of it (its locks are no locks).
//
// Also made fork-safe here:
//  * the frozen objects of a collection: a collection stays inside the
//    gate from its first lock until it has unfrozen its garbage, so a
//    child never finds objects frozen by a thread it does not have (weak
//    lockers would wait for ever);
//  * collections that other threads had in progress (steps 7-9, their
//    garbage in a private list, whose changes are made inside the gate):
//    the child gives their garbage back to its heap, uncollected
//    (heaps_after_fork_in_child, heap.cpp).
//  * the library's singletons (registries, the gc module, the unraisable
//    hook's state, the type-name cache): each is a function-local static
//    made on first use, and a thread in the middle of making one at the
//    fork would leave its initialization guard taken in the child, which
//    would wait on it for ever at its first use (seen: a child hung in
//    gc_on_allocate on gc::collector::module()'s guard, forked while the
//    parent's first worker threads were starting). Each is made at
//    start-up instead (`g_..._made` next to it), before the program can
//    have threads that fork.
// Left as they are in the child: other threads' allocator pools (their
// blocks freed in the child are not reused; lock-free, so not gated) and
// the deaths other threads had queued (their objects stay allocated), heaps
// of threads that do not exist in the child (their cycles are not
// collected there; counting works as everywhere).
#include <pthread.h>

#include <cstdint>
#include <new>

#if defined(__linux__) && __has_include(<linux/membarrier.h>)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#define WEAKREF_HAVE_MEMBARRIER 1
#endif

#include "heap.hpp"
#include "weakref/detail/atomics.hpp"
#include "weakref/detail/fork_gate.hpp"

namespace weakref::detail {

WEAKREF_TLS_INITIAL_EXEC constinit thread_local ForkGateRecord* tls_fork_record = nullptr;
constinit std::atomic<std::uint32_t> fork_gate{0};

namespace {

std::atomic<ForkGateRecord*> g_records{nullptr};
// Locks held by threads that have no record, and this thread's share.
std::atomic<std::uint32_t> g_heavy{0};
constinit thread_local std::uint32_t tls_heavy = 0;
// Set when the thread's record has been given back at thread exit: its
// last locks (other thread_local destructors) count in g_heavy.
constinit thread_local bool tls_record_gone = false;

enum class Barrier { none, private_expedited, global };
Barrier g_barrier = Barrier::none;

#ifdef WEAKREF_HAVE_MEMBARRIER
long membarrier(int cmd) noexcept { return syscall(SYS_membarrier, cmd, 0, 0); }
#endif

// Decided once, at start-up: whether the fork side can fence the other
// threads (then entering threads need no fence of their own).
Barrier choose_barrier() noexcept {
#ifdef WEAKREF_HAVE_MEMBARRIER
  const long cmds = membarrier(MEMBARRIER_CMD_QUERY);
  if (cmds > 0) {
    if ((cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
        (cmds & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) &&
        membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0)
      return Barrier::private_expedited;
    if (cmds & MEMBARRIER_CMD_GLOBAL) return Barrier::global;
  }
#endif
  return Barrier::none;
}

// A full fence on every thread of the process (the expedited command, or
// the global one, slower, should it fail; it worked at start-up).
void fence_all_threads() noexcept {
#ifdef WEAKREF_HAVE_MEMBARRIER
  if (g_barrier == Barrier::private_expedited && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
    return;
  if (g_barrier != Barrier::none) membarrier(MEMBARRIER_CMD_GLOBAL);
#endif
}

struct RecordOwner {
  ~RecordOwner() {
    if (ForkGateRecord* r = tls_fork_record) {
      tls_fork_record = nullptr;
      tls_record_gone = true;
      r->in_use.store(false, std::memory_order_release);
    }
  }
};
thread_local RecordOwner tls_record_owner;

// The calling thread's record, reused or made; null when it cannot have
// one (no memory, thread exit, or locks counted in g_heavy are held).
ForkGateRecord* register_thread() noexcept {
  if (tls_record_gone || tls_heavy != 0) return nullptr;
  ForkGateRecord* r = g_records.load(std::memory_order_acquire);
  for (; r; r = r->next) {
    bool free = false;
    if (!r->in_use.load(std::memory_order_relaxed) &&
        r->in_use.compare_exchange_strong(free, true, std::memory_order_acq_rel))
      break;
  }
  if (!r) {
    r = new (std::nothrow) ForkGateRecord;
    if (!r) return nullptr;
    r->in_use.store(true, std::memory_order_relaxed);
    ForkGateRecord* top = g_records.load(std::memory_order_relaxed);
    do {
      r->next = top;
    } while (!g_records.compare_exchange_weak(top, r, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
  }
  (void)&tls_record_owner;  // gives the record back at thread exit
  tls_fork_record = r;
  return r;
}

void wait_until_open() noexcept {
  unsigned spins = 0;
  while (fork_gate.load(std::memory_order_acquire) & kGateClosed) spin_pause(spins);
}

// Closing the gate and reading the counts are sequentially consistent:
// against an entering thread that fences (kGateFenced: its count is stored
// seq_cst before its seq_cst load of the gate) the total order alone makes
// one of the two see the other; against the others, membarrier does.
void prepare() noexcept {
  fork_gate.fetch_or(kGateClosed, std::memory_order_seq_cst);
  fence_all_threads();
  ForkGateRecord* own = tls_fork_record;
  unsigned spins = 0;
  for (ForkGateRecord* r = g_records.load(std::memory_order_seq_cst); r; r = r->next) {
    if (r == own) continue;
    while (r->held.load(std::memory_order_seq_cst) != 0) spin_pause(spins);
  }
  while (g_heavy.load(std::memory_order_seq_cst) != tls_heavy) spin_pause(spins);
}

void parent() noexcept { fork_gate.fetch_and(~kGateClosed, std::memory_order_release); }

void child() noexcept {
  // The other threads are gone: their records are free, their counts 0.
  ForkGateRecord* own = tls_fork_record;
  for (ForkGateRecord* r = g_records.load(std::memory_order_relaxed); r; r = r->next) {
    if (r == own) continue;
    r->held.store(0, std::memory_order_relaxed);
    r->in_use.store(false, std::memory_order_relaxed);
  }
  g_heavy.store(tls_heavy, std::memory_order_relaxed);
  heaps_after_fork_in_child();
#ifdef WEAKREF_HAVE_MEMBARRIER
  // (Registration is per process: the child's own forks need it again.)
  if (g_barrier == Barrier::private_expedited &&
      membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
    g_barrier = Barrier::global;
#endif
  fork_gate.fetch_and(~kGateClosed, std::memory_order_release);
}

// At start-up (the library's lock functions refer to this file, so it is
// always linked in).
[[maybe_unused]] const bool g_installed = [] {
  g_barrier = choose_barrier();
  if (g_barrier == Barrier::none) fork_gate.fetch_or(kGateFenced, std::memory_order_relaxed);
  return pthread_atfork(&prepare, &parent, &child) == 0;
}();

}  // namespace

void heavy_fence() noexcept { fence_all_threads(); }

void gate_enter_slow(ForkGateRecord* r, std::uint32_t held_before) noexcept {
  if (!r) {
    r = register_thread();
    if (!r) {
      // No record: the process-wide count, with real fences.
      for (;;) {
        const bool outermost = tls_heavy == 0;
        ++tls_heavy;
        g_heavy.fetch_add(1, std::memory_order_seq_cst);
        if (!outermost || !(fork_gate.load(std::memory_order_seq_cst) & kGateClosed)) return;
        --tls_heavy;
        g_heavy.fetch_sub(1, std::memory_order_release);
        wait_until_open();
      }
    }
    held_before = r->held.load(std::memory_order_relaxed);
    r->held.store(held_before + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (held_before != 0) return;
  }
  for (;;) {
    // Without membarrier, the count is stored again, sequentially
    // consistent, before the gate is read the same way (see prepare()).
    if (fork_gate.load(std::memory_order_relaxed) & kGateFenced)
      r->held.store(held_before + 1, std::memory_order_seq_cst);
    if (!(fork_gate.load(std::memory_order_seq_cst) & kGateClosed)) return;
    r->held.store(held_before, std::memory_order_release);  // back off
    wait_until_open();
    r->held.store(held_before + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
  }
}

void gate_leave_slow() noexcept {
  --tls_heavy;
  g_heavy.fetch_sub(1, std::memory_order_release);
}

}  // namespace weakref::detail
