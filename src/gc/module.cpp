// The gc module: CPython's Modules/gcmodule.c (3.11) outside
// gc_collect_main, i.e. what Python code sees of the collector: collect()
// and the automatic collections (thresholds, generation counts, the orphan
// heap of exited threads), enable/disable, the debug flags and their
// output, gc.garbage, gc.callbacks, get_stats, get_objects,
// get_referrers/get_referents, freeze/unfreeze. The collection of one heap
// (steps 1-9) is collect.cpp's collect_one.
//
// Invariants
//  * One collection per heap at a time (Heap::collecting, held from before
//    the "start" gc.callbacks until after the "stop" ones), and one per
//    thread at a time (tls_collections): a collect() from inside a
//    collection (any callback, finalizer or destructor it runs) returns 0
//    at once, and automatic collections do nothing there.
//  * Module::mu guards gc.garbage and gc.callbacks; it is never held while
//    user code runs (callbacks are copied out, one at a time).
//  * A collection allocates nothing: the heaps it covers are a fixed array,
//    the callbacks list is read an entry at a time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "../alloc.hpp"
#include "collector.hpp"
#include "weakref/unraisable.hpp"

namespace weakref::gc {

namespace collector {

Module& module() {
  static auto* m = new Module;  // never destroyed: usable during exit
  return *m;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_module_made = (module(), true);

void debug_print(const char* text) {
  std::fputs(text, stderr);
  std::fflush(stderr);
}

}  // namespace collector

using namespace collector;

namespace {

// ---------------------------------------------------------------------------
// Callbacks

// gc.callbacks, in list order, the list read afresh before each call (as
// CPython's invoke_gc_callback, which indexes the live list): a callback
// added or removed by another is seen. Allocates nothing.
void run_callbacks(Phase phase, const CallbackInfo& info) noexcept {
  for (std::size_t i = 0;; ++i) {
    std::shared_ptr<const Callback> cb;
    {
      std::lock_guard<wd::Mutex> g(module().mu);
      if (i >= module().callbacks.size()) return;
      cb = module().callbacks[i].second;
    }
    try {
      (*cb)(phase, info);
    } catch (...) {
      write_unraisable(std::current_exception(), "Exception ignored in",
                       "garbage collection callback");
    }
  }
}

// ---------------------------------------------------------------------------
// get_referrers / get_referents visitors

// get_referents.
struct ListVisitor : Visitor {
  std::vector<ObjectHeader*> found;
  explicit ListVisitor(const Ops* ops) noexcept : Visitor(ops) {}
};
void list_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  static_cast<ListVisitor&>(v).found.push_back(h);
}
const Visitor::Ops kListOps{&list_strong, &no_weak, &no_keep, false, nullptr};

// get_referrers.
struct FindVisitor : Visitor {
  const std::unordered_set<ObjectHeader*>* targets;
  bool hit = false;
  FindVisitor(const Ops* ops, const std::unordered_set<ObjectHeader*>* t) noexcept
      : Visitor(ops), targets(t) {}
};
void find_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  auto& f = static_cast<FindVisitor&>(v);
  if (f.targets->count(h)) f.hit = true;
}
const Visitor::Ops kFindOps{&find_strong, &no_weak, &no_keep, false, nullptr};

// Collections running on this thread (their callbacks' collect() and
// automatic collections do nothing): one collection per thread at a time.
constinit thread_local int tls_collections = 0;

// The heaps one collection covers: the caller's, the orphan heap for a
// full collection, and the shared heaps the caller holds (a fixed array: a
// collection allocates nothing; gc::collect covers more held shared heaps
// in further collections).
struct HeapSet {
  static constexpr int kMax = 8;
  Heap* heaps[kMax] = {};
  int n = 0;
  Heap** begin() noexcept { return heaps; }
  Heap** end() noexcept { return heaps + n; }
};

// One collection (gc_collect_main + its callbacks) of the given heaps: the
// first is the caller's; a heap already being collected is skipped (if it
// is the caller's, nothing happens and 0 is returned). The heaps stay
// marked as being collected until the "stop" callbacks have returned, so
// that a collect() from a callback returns 0 (CPython's gcstate->collecting
// covers its callbacks too).
std::size_t collect_heaps(HeapSet set, int generation) noexcept {
  HeapSet heaps;
  for (Heap* h : set)
    if (!h->collecting.exchange(true, std::memory_order_acq_rel)) heaps.heaps[heaps.n++] = h;
  if (heaps.n == 0) return 0;
  struct Release {
    HeapSet& heaps;
    Release(HeapSet& h) noexcept : heaps(h) {
      ++tls_collections;
      for (Heap* heap : heaps) heap->collector = wd::current_collector_token();
    }
    ~Release() {
      for (Heap* h : heaps) {
        h->collector = nullptr;
        h->collecting.store(false, std::memory_order_release);
      }
      --tls_collections;
      // Much of what a collection frees may belong to exited threads' pools.
      wd::pool_trim_exited();
    }
  } release{heaps};

  Module& m = module();
  const int debug = m.debug.load(std::memory_order_relaxed);
  run_callbacks(Phase::start, {generation, 0, 0});
  const auto t0 = std::chrono::steady_clock::now();
  if (debug & DEBUG_STATS) {
    std::size_t sizes[wd::kGenerations] = {0, 0, 0};
    std::size_t permanent = 0;
    for (Heap* h : heaps) {
      std::lock_guard<SpinLock> lk(h->lock);
      for (int i = 0; i < wd::kGenerations; ++i) sizes[i] += h->gen[i].size();
      permanent += h->permanent.size();
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "gc: collecting generation %d...\n"
                  "gc: objects in each generation: %zu %zu %zu\n"
                  "gc: objects in permanent generation: %zu\n",
                  generation, sizes[0], sizes[1], sizes[2], permanent);
    debug_print(buf);
  }
  std::size_t found = 0;
  for (Heap* h : heaps) found += collect_one(h, generation, debug);

  m.stats[generation][0].fetch_add(1, std::memory_order_relaxed);
  m.stats[generation][1].fetch_add(found, std::memory_order_relaxed);
  if (debug & DEBUG_STATS) {
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[160];
    std::snprintf(buf, sizeof buf, "gc: done, %zu unreachable, 0 uncollectable, %.4fs elapsed\n",
                  found, secs);
    debug_print(buf);
  }
  run_callbacks(Phase::stop, {generation, found, 0});
  return found;
}

// CPython's gc_collect_generations: the oldest generation over threshold.
void collect_generations(Heap* heap) noexcept {
  Module& m = module();
  for (int i = wd::kGenerations - 1; i >= 0; --i) {
    if (heap->count[i].load(std::memory_order_relaxed) >
        m.threshold[i].load(std::memory_order_relaxed)) {
      if (i == wd::kGenerations - 1) {
        std::lock_guard<SpinLock> lk(heap->lock);
        if (heap->long_lived_pending < heap->long_lived_total / 4) continue;
      }
      HeapSet set;
      set.heaps[set.n++] = heap;
      collect_heaps(set, i);
      return;
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

// The shared heaps the caller holds are collected with its own heap (it
// holds their locks, so nobody writes their objects meanwhile), in one
// collection; beyond what one HeapSet takes, in further collections.
std::size_t collect(int generation) {
  if (generation < 0 || generation > 2) throw std::invalid_argument("invalid generation");
  if (tls_collections) return 0;
  Heap* own = wd::current_heap();
  if (own->collecting.load(std::memory_order_acquire)) return 0;
  HeapSet set;
  set.heaps[set.n++] = own;
  if (generation == 2 && own != wd::orphan_heap()) set.heaps[set.n++] = wd::orphan_heap();
  std::size_t found = 0;
  for (std::size_t done = 0;;) {
    // (The held list is the same after each collection: only this thread
    // changes it, and its callbacks' lock() / unlock() pairs have returned.)
    Heap* held[HeapSet::kMax];
    const std::size_t room = static_cast<std::size_t>(HeapSet::kMax - set.n);
    const std::size_t total = wd::held_shared_heaps(held, done, room);
    const std::size_t got = std::min(total - std::min(total, done), room);
    for (std::size_t i = 0; i < got; ++i) set.heaps[set.n++] = held[i];
    done += got;
    found += collect_heaps(set, generation);
    if (done >= total) return found;
    set = HeapSet{};
  }
}

void enable() noexcept { module().enabled.store(true, std::memory_order_relaxed); }
void disable() noexcept { module().enabled.store(false, std::memory_order_relaxed); }
bool isenabled() noexcept { return module().enabled.load(std::memory_order_relaxed); }

std::array<long, 3> get_count() noexcept {
  Heap* h = wd::current_heap();
  return {h->count[0].load(), h->count[1].load(), h->count[2].load()};
}
std::array<long, 3> get_threshold() noexcept {
  Module& m = module();
  return {m.threshold[0].load(), m.threshold[1].load(), m.threshold[2].load()};
}
void set_threshold(long t0) noexcept { module().threshold[0].store(t0); }
void set_threshold(long t0, long t1) noexcept {
  set_threshold(t0);
  module().threshold[1].store(t1);
}
void set_threshold(long t0, long t1, long t2) noexcept {
  set_threshold(t0, t1);
  module().threshold[2].store(t2);
}

void set_debug(int flags) noexcept { module().debug.store(flags); }
int get_debug() noexcept { return module().debug.load(); }

std::vector<Strong<void>> get_objects(std::optional<int> generation) {
  if (generation && (*generation < 0 || *generation > 2))
    throw std::invalid_argument("generation parameter must be less than the number of available "
                                "generations (3)");
  std::vector<Strong<void>> out;
  std::vector<ObjectHeader*> found;
  wd::for_each_heap([&](Heap& heap) {
    std::lock_guard<SpinLock> lk(heap.lock);
    for (int i = 0; i < wd::kGenerations; ++i) {
      if (generation && *generation != i) continue;
      for (GcHead* g = heap.gen[i].head.next; g != &heap.gen[i].head; g = g->next) {
        ObjectHeader* h = header_of(g);
        if (wd::incref_if_alive(h)) found.push_back(h);
      }
    }
  });
  out.reserve(found.size());
  for (ObjectHeader* h : found) out.push_back(wd::StrongAccess::adopt(h->object(), h));
  return out;
}

namespace detail {

std::vector<Strong<void>> referrers(std::vector<ObjectHeader*> targets) {
  std::unordered_set<ObjectHeader*> set(targets.begin(), targets.end());
  std::vector<ObjectHeader*> found;
  std::vector<Heap*> heaps{wd::current_heap()};
  if (heaps[0] != wd::orphan_heap()) heaps.push_back(wd::orphan_heap());
  // The SharedHeaps this thread holds: nobody else writes their members
  // while it holds them.
  Heap* held[8];
  for (std::size_t done = 0;;) {
    const std::size_t total = wd::held_shared_heaps(held, done, std::size(held));
    const std::size_t got = std::min(total - std::min(total, done), std::size(held));
    heaps.insert(heaps.end(), held, held + got);
    done += got;
    if (done >= total) break;
  }
  for (Heap* heap : heaps) {
    std::lock_guard<SpinLock> lk(heap->lock);
    for (GcList* list : {&heap->gen[0], &heap->gen[1], &heap->gen[2], &heap->permanent})
      for (GcHead* g = list->head.next; g != &list->head; g = g->next) {
        ObjectHeader* h = header_of(g);
        if (h->count_word().count() == 0) continue;
        FindVisitor v(&kFindOps, &set);
        trace(h, v);
        if (v.hit && wd::incref_if_alive(h)) found.push_back(h);
      }
  }
  std::vector<Strong<void>> out;
  for (ObjectHeader* h : found) out.push_back(wd::StrongAccess::adopt(h->object(), h));
  return out;
}

std::vector<Strong<void>> referents(std::vector<ObjectHeader*> objects) {
  ListVisitor v(&kListOps);
  for (ObjectHeader* h : objects)
    if (h->traced()) trace(h, v);
  std::vector<Strong<void>> out;
  out.reserve(v.found.size());
  for (ObjectHeader* h : v.found) {
    wd::incref(h);
    out.push_back(wd::StrongAccess::adopt(h->object(), h));
  }
  return out;
}

bool is_tracked(ObjectHeader* h) noexcept {
  if (!h->traced()) return false;
  Heap* heap = wd::lock_heap_of(h);
  bool tracked = h->gc()->next != nullptr;
  heap->lock.unlock();
  return tracked;
}

bool is_finalized(ObjectHeader* h) noexcept { return h->count_word().finalized(); }

}  // namespace detail

void freeze() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  for (auto& g : h->gen) g.merge_into(h->permanent);
  for (auto& c : h->count) c.store(0, std::memory_order_relaxed);
}
void unfreeze() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  h->permanent.merge_into(h->gen[wd::kGenerations - 1]);
}
std::size_t get_freeze_count() noexcept {
  Heap* h = wd::current_heap();
  std::lock_guard<SpinLock> lk(h->lock);
  return h->permanent.size();
}

std::vector<Strong<void>> garbage() {
  std::lock_guard<wd::Mutex> g(module().mu);
  return module().garbage;
}
void clear_garbage() {
  std::vector<Strong<void>> old;
  {
    std::lock_guard<wd::Mutex> g(module().mu);
    old.swap(module().garbage);
  }
}

std::string_view to_string(Phase p) noexcept { return p == Phase::start ? "start" : "stop"; }

CallbackId add_callback(Callback cb) {
  auto p = std::make_shared<const Callback>(std::move(cb));
  std::lock_guard<wd::Mutex> g(module().mu);
  CallbackId id = module().next_callback++;
  module().callbacks.emplace_back(id, std::move(p));
  return id;
}
bool remove_callback(CallbackId id) {
  std::shared_ptr<const Callback> old;
  std::lock_guard<wd::Mutex> g(module().mu);
  auto& v = module().callbacks;
  auto it = std::find_if(v.begin(), v.end(), [&](auto& e) { return e.first == id; });
  if (it == v.end()) return false;
  old = std::move(it->second);
  v.erase(it);
  return true;
}
void clear_callbacks() {
  std::vector<std::pair<CallbackId, std::shared_ptr<const Callback>>> old;
  std::lock_guard<wd::Mutex> g(module().mu);
  old.swap(module().callbacks);
}

std::array<GenerationStats, 3> get_stats() noexcept {
  std::array<GenerationStats, 3> out{};
  for (int i = 0; i < 3; ++i)
    out[i] = {module().stats[i][0].load(), module().stats[i][1].load(),
              module().stats[i][2].load()};
  return out;
}

}  // namespace weakref::gc

namespace weakref::detail {

void gc_on_allocate() noexcept {
  gc::collector::Module& m = gc::collector::module();
  if (!m.enabled.load(std::memory_order_relaxed)) return;
  const long t0 = m.threshold[0].load(std::memory_order_relaxed);
  if (t0 == 0) return;
  // The heap the object will go to (track()): the innermost shared heap the
  // thread holds (so it may collect it: nobody else writes its objects
  // meanwhile), else its own.
  Heap* heap = tls_shared_heap;
  if (!heap) [[likely]]
    heap = current_heap();
  const bool own = heap->count[0].load(std::memory_order_relaxed) > t0;
  // Exited threads' objects count towards every thread's automatic
  // collection: whoever allocates next collects them (a full collection of
  // the orphan heap alone), so that garbage left by short-lived threads is
  // bounded without an explicit collect().
  const bool orphans = orphans_pending.load(std::memory_order_relaxed) > t0;
  if (!own && !orphans) [[likely]]
    return;
  if (gc::tls_collections || heap->collecting.load(std::memory_order_relaxed)) return;
  if (own) gc::collect_generations(heap);
  if (orphans && orphans_pending.load(std::memory_order_relaxed) > t0) {
    gc::HeapSet set;
    set.heaps[set.n++] = orphan_heap();
    gc::collect_heaps(set, 2);
  }
}

}  // namespace weakref::detail

namespace weakref::gc::collector {

std::size_t collect_shared(Heap* heap, int generation) noexcept {
  if (tls_collections) return 0;
  HeapSet set;
  set.heaps[set.n++] = heap;
  return collect_heaps(set, generation);
}

}  // namespace weakref::gc::collector
