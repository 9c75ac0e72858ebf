// Faults a hostile program can cause (issue 13, part 3): allocation failure
// at every allocation point of a collection (explicit and automatic), memory
// exhausted while a large graph is released, a collector with no memory for
// counting weak handles. The sweeps use the library's fault-injection hook
// (weakref/detail/fault_injection.hpp; the asan and tsan presets build it
// in) and this file's replacement of the global operator new, which makes
// every allocation of the library and of the standard library an
// allocation point too; without the hook they are skipped.
//
// What every sweep checks, for each failure point N: no crash, no exception
// out of gc::collect(), every object destroyed exactly once, every callback
// and finalizer that must run run exactly once, no callback that must not
// run (a garbage weakref's) run, and nothing left alive at the end (ASan's
// leak check covers the memory).
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <new>
#include <weakref/detail/fault_injection.hpp>

#include "support.hpp"

// --- Every allocation is an allocation point ----------------------------------

namespace {
namespace fault = weakref::detail::fault;

[[gnu::noinline]] void* allocate(std::size_t n, std::size_t align) {
  if (fault::should_fail()) return nullptr;
  if (align <= alignof(std::max_align_t)) return std::malloc(n ? n : 1);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
[[gnu::noinline]] void* allocate_or_throw(std::size_t n, std::size_t align) {
  if (void* p = allocate(n, align)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void deallocate(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) { return allocate_or_throw(n, 0); }
void* operator new[](std::size_t n) { return allocate_or_throw(n, 0); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return allocate_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return allocate(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { deallocate(p); }
void operator delete[](void* p) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t) noexcept { deallocate(p); }
void operator delete(void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { deallocate(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deallocate(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deallocate(p); }

namespace weakref::testing {
namespace {

// What happened to the objects and callbacks of a scenario, by id. Fixed
// arrays: recording never allocates, so it never moves a failure point.
constexpr int kIds = 512;
struct Ledger {
  int created[kIds];
  int registered[kIds];  // finalize objects whose constructor returned
  int destroyed[kIds];
  int finalized[kIds];   // tp_finalize
  int callbacks[kIds];   // weakref callbacks
  int finalizers[kIds];  // weakref::finalize functions
};
Ledger g;

struct FNode {
  int id;
  Strong<FNode> next;
  std::vector<Strong<FNode>> kids;
  ref<FNode> weak;     // a weak member
  ref<FNode> weak_cb;  // a weak member with a callback
  WeakKeyDictionary<FNode, int> seen;
  explicit FNode(int i) : id(i) { ++g.created[id]; }
  FNode(const FNode&) = delete;
  FNode& operator=(const FNode&) = delete;
  ~FNode() { ++g.destroyed[id]; }
  void tp_finalize() { ++g.finalized[id]; }
  void trace(gc::Visitor& v) { v(next, kids, weak, weak_cb, seen); }
};

std::function<void(const ref<FNode>&)> count_callback(int id) {
  return [id](const ref<FNode>&) { ++g.callbacks[id]; };
}

// Live objects 0..4, and garbage: a ring 10..19 (each node holding kids,
// weak members to live and garbage objects, a weakref with a callback to
// another garbage node -- a garbage weakref, whose callback must not run --
// and a WeakKeyDictionary over both), a pair 20-21 and a self-cycle 30.
// Outside the garbage: weakrefs with callbacks to it (ids 100 + target,
// must run once), a live object's weak member with a callback to it (id
// 300), finalizers of some of it (ids of their objects).
struct World {
  std::vector<Strong<FNode>> live;
  std::vector<ref<FNode>> refs;
  std::vector<finalize> fins;
  static constexpr std::size_t kGarbage = 13;
  static constexpr int kGarbageIds[kGarbage] = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 30};
  static constexpr int kLiveIds[5] = {0, 1, 2, 3, 4};

  World() {
    for (int i = 0; i < 5; ++i) live.push_back(make<FNode>(i));
    std::vector<Strong<FNode>> ring;
    for (int i = 0; i < 10; ++i) ring.push_back(make<FNode>(10 + i));
    for (int i = 0; i < 10; ++i) {
      FNode& n = *ring[i];
      n.next = ring[(i + 1) % 10];
      n.kids = {ring[(i + 3) % 10], live[i % 5]};
      n.weak = ref<FNode>(i % 2 ? live[i % 5] : ring[(i + 5) % 10]);
      n.weak_cb = ref<FNode>(ring[(i + 7) % 10], count_callback(200 + n.id));
      n.seen.set(live[i % 5], i);
      n.seen.set(ring[(i + 2) % 10], i);
    }
    Strong<FNode> a = make<FNode>(20), b = make<FNode>(21), s = make<FNode>(30);
    a->next = b;
    b->kids.push_back(a);
    s->next = s;
    live[0]->weak_cb = ref<FNode>(ring[4], count_callback(300));
    // A callback that allocates: when that fails, its std::bad_alloc goes
    // to the unraisable hook (id 400 counts the reports).
    refs.emplace_back(ring[1], [](const ref<FNode>&) {
      ++g.callbacks[111];
      std::string text(100, 'x');
      g.callbacks[112] += text.size() == 100;
    });
    for (const Strong<FNode>& n : {ring[0], ring[5], a, s}) {
      refs.emplace_back(n, count_callback(100 + n->id));
      const int id = n->id;
      fins.emplace_back(n, [id] { ++g.finalizers[id]; });
      ++g.registered[id];
    }
  }
};

// After a run and the final collection: everything happened exactly once.
void expect_ledger(std::uint64_t n) {
  for (int id : World::kGarbageIds) {
    EXPECT_EQ(g.destroyed[id], 1) << "object " << id << ", failure point " << n;
    EXPECT_EQ(g.finalized[id], 1) << "tp_finalize " << id << ", failure point " << n;
    EXPECT_EQ(g.callbacks[200 + id], 0) << "garbage weakref's callback ran, " << n;
  }
  for (int id : World::kLiveIds) {
    EXPECT_EQ(g.destroyed[id], 1) << "object " << id << ", failure point " << n;
    EXPECT_EQ(g.finalized[id], 1) << "tp_finalize " << id << ", failure point " << n;
  }
  for (int id : {10, 15, 20, 30}) {
    EXPECT_EQ(g.callbacks[100 + id], 1) << "callback of " << id << ", failure point " << n;
    EXPECT_EQ(g.finalizers[id], 1) << "finalizer of " << id << ", failure point " << n;
  }
  EXPECT_EQ(g.callbacks[300], 1) << "failure point " << n;
  EXPECT_EQ(g.callbacks[111], 1) << "failure point " << n;
  EXPECT_EQ(g.callbacks[112] + g.callbacks[400], 1)
      << "the allocating callback neither finished nor was reported, " << n;
}

class FaultsTest : public Test {
 protected:
  void SetUp() override {
    if (!fault::built_in())
      GTEST_SKIP() << "the fault-injection hook is not built in (-DWEAKREF_FAULT_INJECTION=ON; "
                      "the asan and tsan presets have it)";
    gc::disable();
    // Counts reports, allocating nothing.
    previous_hook_ = set_unraisable_hook([](const UnraisableInfo&) { ++g.callbacks[400]; });
    Test::SetUp();
  }
  void TearDown() override {
    fault::disarm();
    if (!fault::built_in()) return;
    set_unraisable_hook(previous_hook_);
    gc::set_threshold(700, 10, 10);
    gc::set_debug(0);
    Test::TearDown();
    gc::enable();
  }

 private:
  UnraisableHook previous_hook_;
};

constexpr std::uint64_t kMaxPoints = 100000;  // a sweep that runs away fails

// Explicit collect() with allocation point N failing, for every N: the
// collection is not affected at all (it needs no memory).
TEST_F(FaultsTest, CollectNeedsNoMemory) {
  for (bool exhausted : {false, true}) {
    std::uint64_t n = 1;
    for (; n < kMaxPoints; ++n) {
      g = {};
      bool injected;
      {
        World w;
        if (exhausted)
          fault::fail_from(n);
        else
          fault::fail_at(n);
        std::size_t found = 0;
        EXPECT_NO_THROW(found = gc::collect());
        injected = fault::injected();
        fault::disarm();
        EXPECT_EQ(found, World::kGarbage) << "failure point " << n;
      }
      gc::collect();
      expect_ledger(n);
      if (!injected || HasFailure()) break;
    }
    EXPECT_GT(n, 1U) << "no allocation point met: the sweep tested nothing";
    std::printf("%s: %llu failure points\n", exhausted ? "exhausted from N" : "N-th fails",
                static_cast<unsigned long long>(n - 1));
  }
}

// DEBUG_SAVEALL with allocation failing: what gc.garbage cannot take stays
// alive for a later collection (as CPython does); nothing is lost.
TEST_F(FaultsTest, SaveAllWithoutMemoryKeepsTheGarbageAlive) {
  for (std::uint64_t n = 1; n < kMaxPoints; ++n) {
    g = {};
    bool injected;
    {
      World w;
      gc::set_debug(gc::DEBUG_SAVEALL);
      fault::fail_from(n);
      EXPECT_NO_THROW(gc::collect());
      injected = fault::injected();
      fault::disarm();
      gc::set_debug(0);
      gc::clear_garbage();
    }
    gc::collect();
    gc::collect();
    expect_ledger(n);
    if (!injected || HasFailure()) break;
  }
}

// The automatic collection that make<T>() runs, with allocation point N
// failing: make may throw std::bad_alloc (for its own block), the
// collection itself never fails.
TEST_F(FaultsTest, AutomaticCollectionNeedsNoMemory) {
  for (std::uint64_t n = 1; n < kMaxPoints; ++n) {
    g = {};
    bool injected, made = false;
    {
      World w;
      gc::set_threshold(1);
      gc::enable();
      fault::fail_at(n);
      try {
        Strong<FNode> extra = make<FNode>(40);
        made = true;
      } catch (const std::bad_alloc&) {
      }
      injected = fault::injected();
      fault::disarm();
      gc::disable();
      gc::set_threshold(700);
    }
    gc::collect();
    expect_ledger(n);
    EXPECT_EQ(g.destroyed[40], made ? 1 : 0) << "failure point " << n;
    if (!injected || HasFailure()) break;
  }
}

// The whole scenario under allocation failure: building it (make, weakrefs,
// vectors, container insertions, finalize registrations), collecting and
// tearing it down, allocation point N failing (and every one from N on).
// Whatever throws std::bad_alloc, nothing is lost or doubled: every object
// made is destroyed once, every registered finalizer runs once, no
// callback runs twice.
TEST_F(FaultsTest, WholeScenarioUnderAllocationFailure) {
  for (bool exhausted : {false, true}) {
    std::uint64_t n = 1;
    for (; n < kMaxPoints; ++n) {
      g = {};
      bool injected;
      {
        if (exhausted)
          fault::fail_from(n);
        else
          fault::fail_at(n);
        try {
          World w;
          gc::collect();
        } catch (const std::bad_alloc&) {
        }
        injected = fault::injected();
        fault::disarm();
      }
      gc::collect();
      for (int id = 0; id < kIds; ++id) {
        ASSERT_EQ(g.destroyed[id], g.created[id]) << "object " << id << ", point " << n;
        ASSERT_EQ(g.finalized[id], g.created[id]) << "tp_finalize " << id << ", point " << n;
        ASSERT_EQ(g.finalizers[id], g.registered[id]) << "finalizer " << id << ", point " << n;
        ASSERT_LE(g.callbacks[id], 1) << "callback " << id << ", point " << n;
      }
      if (!injected) break;
    }
    std::printf("whole scenario, %s: %llu failure points\n",
                exhausted ? "exhausted from N" : "N-th fails",
                static_cast<unsigned long long>(n - 1));
  }
}

// Counting the weak handles held by garbage without memory: the fixed
// buffer is used a window (8192 handles) at a time; a weakref whose
// handles fall in different windows is still judged on all of them.
TEST_F(FaultsTest, GarbageWeakrefsAreFoundWithoutMemory) {
  struct Holder {
    std::vector<ref<FNode>> refs;
    Strong<Holder> next;
    void trace(gc::Visitor& v) { v(refs, next); }
  };
  for (bool no_memory : {false, true}) {
    g = {};
    {
      Strong<FNode> target = make<FNode>(1), other = make<FNode>(2);
      ref<FNode> garbage_weak(target, count_callback(10));  // held only by the garbage
      ref<FNode> live_weak(target, count_callback(11));     // held outside too
      {
        Strong<Holder> a = make<Holder>(), b = make<Holder>();
        a->next = b;
        b->next = a;
        a->refs.push_back(garbage_weak);
        a->refs.push_back(live_weak);
        for (int i = 0; i < 20000; ++i) a->refs.push_back(ref<FNode>(other));
        b->refs.push_back(garbage_weak);  // past the first window
        b->refs.push_back(live_weak);
        target->next = target;  // the target is garbage too
      }
      garbage_weak = ref<FNode>();
      target.reset();
      if (no_memory) fault::fail_from(1);
      EXPECT_EQ(gc::collect(), 3U);
      fault::disarm();
      EXPECT_EQ(g.destroyed[1], 1);
      EXPECT_EQ(g.callbacks[10], 0) << "the garbage weakref called back";
      EXPECT_EQ(g.callbacks[11], 1);
    }
    EXPECT_EQ(g.destroyed[2], 1);
  }
}

// --- The death queue -----------------------------------------------------------

int g_order[kIds];
int g_dead = 0;

// Untraced: inline count word, or a side table when it has weakrefs.
struct Leaf {
  int id;
  explicit Leaf(int i) : id(i) {}
  ~Leaf() {
    ++g.destroyed[id];
    g_order[g_dead++] = id;
  }
};
// Untraced with tp_finalize, resurrected once (so its word carries
// kFinalized when it dies for good).
struct Phoenix {
  static inline std::vector<Strong<Phoenix>>* saved = nullptr;
  int id;
  explicit Phoenix(int i) : id(i) {}
  ~Phoenix() {
    ++g.destroyed[id];
    g_order[g_dead++] = id;
  }
  void tp_finalize() {
    ++g.finalized[id];
    if (saved) saved->push_back(self(this));
  }
};
// Traced.
struct TLeaf {
  int id;
  Strong<TLeaf> self_loop;  // (empty: a traced object that is no garbage)
  explicit TLeaf(int i) : id(i) {}
  ~TLeaf() {
    ++g.destroyed[id];
    g_order[g_dead++] = id;
  }
  void trace(gc::Visitor& v) { v(self_loop); }
};
// A link of an untraced chain; the last one holds everything.
struct Link {
  Strong<Link> next;
  std::vector<Strong<Leaf>> leaves;
  std::vector<Strong<Phoenix>> phoenixes;
  std::vector<Strong<TLeaf>> traced;
  std::vector<Strong<Leaf>> tail;
};

// Deaths past the nesting limit are queued through the dying objects
// themselves, whatever their form, and run last queued first, each exactly
// once (a resurrected object's tp_finalize does not run again): without a
// byte of memory.
// (The hook, when built in, proves that nothing is allocated: every
// allocation fails meanwhile.)
TEST(FaultsDeathQueueTest, DeathQueueNeedsNoMemory) {
  g = {};
  g_dead = 0;
  std::vector<ref<Leaf>> refs;
  std::vector<ref<Phoenix>> phoenix_refs;
  std::vector<Strong<Phoenix>> saved;
  saved.reserve(16);
  std::vector<int> released;  // the order the last link releases them in
  {
    // A chain of 50: the last link dies 50 deaths deep, so everything it
    // holds is queued.
    Strong<Link> head = make<Link>();
    Link* last = head.get();
    for (int i = 1; i < 50; ++i) {
      last->next = make<Link>();
      last = last->next.get();
    }
    for (int i = 0; i < 10; ++i) {
      last->leaves.push_back(make<Leaf>(100 + i));
      if (i % 2)  // a side table: its header word carries the link
        refs.emplace_back(last->leaves.back(), [](const ref<Leaf>&) { ++g.callbacks[0]; });
    }
    Phoenix::saved = &saved;
    for (int i = 0; i < 10; ++i) {
      Strong<Phoenix> p = make<Phoenix>(200 + i);
      if (i % 2) phoenix_refs.emplace_back(p);
      p.reset();  // dies; its tp_finalize resurrects it into `saved`
    }
    Phoenix::saved = nullptr;
    last->phoenixes = std::move(saved);
    for (int i = 0; i < 10; ++i) last->traced.push_back(make<TLeaf>(300 + i));
    // ~Link releases its members in reverse declaration order (traced,
    // phoenixes, leaves), each vector front to back.
    for (const auto& t : last->traced) released.push_back(t->id);
    for (const auto& p : last->phoenixes) released.push_back(p->id);
    for (const auto& l : last->leaves) released.push_back(l->id);
    fault::fail_from(1);
    head.reset();
    fault::disarm();
  }
  refs.clear();
  ASSERT_EQ(g_dead, 30);
  std::vector<int> order(g_order, g_order + g_dead);
  EXPECT_EQ(order, std::vector<int>(released.rbegin(), released.rend()))
      << "queued deaths run last queued first";
  for (int id : released) EXPECT_EQ(g.destroyed[id], 1) << id;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(g.finalized[200 + i], 1) << "tp_finalize ran again";
  EXPECT_EQ(g.callbacks[0], 5);
}

// --- Memory exhausted for real (RLIMIT_AS) ---------------------------------------

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitizer = true;
#else
constexpr bool kSanitizer = false;
#endif
#else
constexpr bool kSanitizer = false;
#endif

struct Chain {
  Strong<Chain> next;
  std::vector<Strong<Chain>> more;
};

// Grows the stack mapping now: once the address space is capped, a stack
// that has to grow would fault whatever the library does.
[[gnu::noinline]] void touch_stack(std::size_t bytes) {
  volatile char* p = static_cast<volatile char*>(__builtin_alloca(bytes));
  for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 0;
}

// Caps the address space at what is mapped now (plus a little), then takes
// whatever malloc still has: from here on, no allocation succeeds. False
// when that could not be arranged.
bool exhaust_memory() {
  touch_stack(1 << 20);
  long pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  if (pages == 0) return false;
  const rlimit cap{static_cast<rlim_t>(pages) * 4096 + (1 << 20),
                   static_cast<rlim_t>(pages) * 4096 + (1 << 20)};
  if (setrlimit(RLIMIT_AS, &cap) != 0) return false;
  // (Through a volatile pointer: an optimizer may drop a malloc whose
  // result is unused, and assume it succeeded.)
  void* volatile last = nullptr;
  for (std::size_t size = 1 << 20; size >= 16;) {
    last = std::malloc(size);
    if (!last) size /= 2;
  }
  last = std::malloc(16);
  return last == nullptr;
}

// Runs `body` in a child process and expects it to exit with 0.
template <class F>
void in_child(F body) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(body());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child died of signal "
                                 << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A full collection with the address space exhausted: the same World as
// the sweeps above, every allocation failing for real. It used to end in
// std::terminate.
TEST(FaultsRlimitTest, CollectingNeedsNoMemory) {
  if (kSanitizer) GTEST_SKIP() << "sanitizers reserve more address space than any limit allows";
  in_child([] {
    gc::disable();
    set_unraisable_hook([](const UnraisableInfo&) { ++g.callbacks[400]; });
    g = {};
    World w;
    if (!exhaust_memory()) return 10;
    std::size_t found = 0;
    try {
      found = gc::collect();
    } catch (...) {
      return 11;
    }
    if (found != World::kGarbage) return 12;
    for (int id : World::kGarbageIds)
      if (g.destroyed[id] != 1 || g.finalized[id] != 1 || g.callbacks[200 + id] != 0) return 13;
    for (int id : {10, 15, 20, 30})
      if (g.callbacks[100 + id] != 1 || g.finalizers[id] != 1) return 14;
    if (g.callbacks[111] != 1 || g.callbacks[112] + g.callbacks[400] != 1) return 15;
    return 0;
  });
}

// Releasing a large graph with the address space exhausted (no malloc, no
// mmap succeeds) never nests deaths past the limit. The graph: a chain 50
// long whose last link holds 40 more, the 33rd of them the head of a chain
// of 200 000. The death queue used to keep 32 entries in place and grow in
// malloc'd memory; with malloc failing, every death past those 32 ran at
// once, one level deeper, and the long chain overflowed the stack (SIGSEGV).
// Runs in a child process (the parent's address space stays as it is).
TEST(FaultsRlimitTest, ReleasingAGraphNeedsNoMemory) {
  if (kSanitizer) GTEST_SKIP() << "sanitizers reserve more address space than any limit allows";
  in_child([] {
    Strong<Chain> head = make<Chain>();
    Chain* last = head.get();
    for (int i = 1; i < 50; ++i) {
      last->next = make<Chain>();
      last = last->next.get();
    }
    for (int i = 0; i < 40; ++i) last->more.push_back(make<Chain>());
    Chain* tail = last->more[32].get();
    for (int i = 0; i < 200000; ++i) {
      tail->next = make<Chain>();
      tail = tail->next.get();
    }
    if (!exhaust_memory()) return 10;
    head.reset();
    return 0;
  });
}

}  // namespace
}  // namespace weakref::testing
