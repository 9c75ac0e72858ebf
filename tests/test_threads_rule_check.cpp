// The thread rule checked (WEAKREF_CHECK_THREADS, weakref/detail/thread_check.hpp;
// docs/threads.md "The rule checked"): writing a traced member from a thread
// that may not write it stops the program with a message naming the rule, the
// type and both heaps; the writes the rule allows, and those it exempts
// (construction, deaths, the collector's clearing), do not. The death tests
// run only in builds with the option (the asan and tsan presets).
#include <array>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using detail::tls_heap_index;

constexpr const char* kRule =
    "weakref: thread rule violated: writing a traced member from a thread that may not write "
    "it: object of type weakref::testing::Node at 0x[0-9a-f]+ ";
// The object of the main thread's heap, written by a worker that has a heap.
std::string another_threads(const char* rule = kRule) {
  return std::string(rule) +
         "in heap [0-9]+ \\(the heap of another thread\\), by a thread whose heap is [0-9]+ "
         "\\(holds no shared heap\\)";
}

// Runs f on a new thread, which has a heap of its own (it makes an object
// first), and waits for it.
template <class F>
void on_worker(F f) {
  std::thread t([&] {
    Strong<Node> own = make<Node>("worker's");
    f(own);
  });
  t.join();
}

class RuleCheckTest : public Test {
 protected:
  void SetUp() override {
    Test::SetUp();
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

class RuleCheckDeathTest : public RuleCheckTest {
 protected:
  void SetUp() override {
    if (!WEAKREF_CHECK_THREADS) GTEST_SKIP() << "built without WEAKREF_CHECK_THREADS";
    RuleCheckTest::SetUp();
  }
};

// -- The rule ------------------------------------------------------------------

TEST_F(RuleCheckTest, TheLibraryAndTheHeadersAgreeOnTheOption) {
  EXPECT_EQ(detail::thread_checks_enabled_in_library(), WEAKREF_CHECK_THREADS != 0);
}

TEST_F(RuleCheckTest, AThreadMayWriteItsOwnHeapOnly) {
  Strong<Node> n = make<Node>();
  const std::uint32_t mine = tls_heap_index;
  ASSERT_NE(mine, detail::kNoHeap);
  EXPECT_TRUE(detail::thread_may_write(mine));
  EXPECT_FALSE(detail::thread_may_write(detail::kOrphanHeap));
  EXPECT_TRUE(detail::thread_may_write(detail::kNoHeap));  // untraced: no rule
  bool worker_may = true, worker_own = false;
  on_worker([&](Strong<Node>&) {
    worker_may = detail::thread_may_write(mine);
    worker_own = detail::thread_may_write(tls_heap_index);
  });
  EXPECT_FALSE(worker_may);
  EXPECT_TRUE(worker_own);
}

// -- It fires -------------------------------------------------------------------

TEST_F(RuleCheckDeathTest, AWorkerAssigningAStrongMemberOfTheMainThreadsObject) {
  Strong<Node> n = make<Node>("main's");
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { n->a = own; }), another_threads());
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { n->a = std::move(own); }), another_threads());
  n->a = make<Node>();
  EXPECT_DEATH(on_worker([&](Strong<Node>&) { n->a = nullptr; }), another_threads());
  EXPECT_DEATH(on_worker([&](Strong<Node>&) { n->a.reset(); }), another_threads());
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { n->a.swap(own); }), another_threads());
  // Moving out of the member empties it: a write too.
  EXPECT_DEATH(on_worker([&](Strong<Node>&) { Strong<Node> taken(std::move(n->a)); }),
               another_threads());
}

TEST_F(RuleCheckDeathTest, AWorkerAssigningARefMemberOfTheMainThreadsObject) {
  Strong<Node> n = make<Node>("main's");
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { n->wa = ref<Node>(own); }), another_threads());
  ref<Node> r(n);
  EXPECT_DEATH(on_worker([&](Strong<Node>&) { n->wa = r; }), another_threads());
  n->wa = r;
  EXPECT_DEATH(on_worker([&](Strong<Node>&) { n->wa.reset(); }), another_threads());
}

// A traced object with the other weak handles as members.
struct Handles {
  proxy<Node> p;
  WeakMethod<int (Node::*)(int, int)> m;
  void trace(gc::Visitor& v) { v(p, m); }
};

TEST_F(RuleCheckDeathTest, AWorkerAssigningProxyAndWeakMethodMembers) {
  Strong<Handles> h = make<Handles>();
  const char* rule =
      "weakref: thread rule violated: writing a traced member from a thread that may not write "
      "it: object of type weakref::testing::\\(anonymous namespace\\)::Handles at 0x[0-9a-f]+ ";
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { h->p = proxy<Node>(own); }),
               another_threads(rule));
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { h->m = WeakMethod(own, &Node::add); }),
               another_threads(rule));
}

// Handles stored inside the object (a std::array, a nested struct) are
// members too; a std::vector's are in its buffer, outside the object: not
// seen (docs/threads.md, "The rule checked").
struct Inline {
  struct Pair {
    Strong<Node> first, second;
  };
  std::array<Strong<Node>, 2> slots;
  Pair pair;
  std::vector<Strong<Node>> outside;
  void trace(gc::Visitor& v) { v(slots, pair, outside); }
};

TEST_F(RuleCheckDeathTest, AWorkerWritingHandlesStoredInsideTheObject) {
  Strong<Inline> in = make<Inline>();
  in->outside.resize(1);
  const char* rule =
      "weakref: thread rule violated: writing a traced member from a thread that may not write "
      "it: object of type weakref::testing::\\(anonymous namespace\\)::Inline at 0x[0-9a-f]+ ";
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { in->slots[1] = own; }), another_threads(rule));
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { in->pair.second = own; }), another_threads(rule));
  on_worker([&](Strong<Node>& own) { in->outside[0] = own; });  // breaks the rule, unseen
  in->outside.clear();
}

TEST_F(RuleCheckDeathTest, TheMainThreadWritingAnObjectOfAJoinedThread) {
  Strong<Node> left;
  std::thread t([&] { left = make<Node>("left by an exited thread"); });
  t.join();
  Strong<Node> mine = make<Node>();
  EXPECT_DEATH(left->a = mine,
               std::string(kRule) +
                   "in heap 1 \\(the orphan heap: objects of exited threads, and disowned ones, "
                   "which no thread may write before adopting them\\), by a thread whose "
                   "heap is [0-9]+ \\(holds no shared heap\\)");
}

// A thread-local destroyed after the thread's heap has merged into the
// orphan heap (it was made before the thread's first traced object, so it
// is destroyed after the heap's owner): the thread's objects are no longer
// its own to write.
struct WritesAtThreadExit {
  Strong<Node> node;
  ~WritesAtThreadExit() {
    if (node) node->a = nullptr;
  }
};

TEST_F(RuleCheckDeathTest, AnExitingThreadWritingObjectsItsHeapGaveUp) {
  EXPECT_DEATH(
      {
        std::thread t([] {
          thread_local WritesAtThreadExit last;
          last.node = make<Node>("made by the exiting thread");
          last.node->a = make<Node>();  // its own: allowed
        });
        t.join();
      },
      std::string(kRule) +
          "in heap 1 \\(the orphan heap: .*\\), by a thread whose own heap is gone \\(it is "
          "exiting: its objects are in the orphan heap\\) \\(holds no shared heap\\)");
}

TEST_F(RuleCheckDeathTest, AThreadWithoutAHeapIsNamedSo) {
  Strong<Node> n = make<Node>("main's");
  Strong<Node> other = make<Node>();
  EXPECT_DEATH(
      {
        std::thread t([&] { n->b = other; });  // makes no traced object first
        t.join();
      },
      std::string(kRule) +
          "in heap [0-9]+ \\(the heap of another thread\\), by a thread that has no "
          "heap yet \\(it has made no traced object\\) \\(holds no shared heap\\)");
}

// A SharedHeap's objects are written by the threads that hold it
// (docs/threads.md, "Graphs shared by threads").
TEST_F(RuleCheckDeathTest, AThreadWritingASharedHeapsObjectWithoutHoldingIt) {
  SharedHeap scene;
  Strong<Node> n;
  {
    std::lock_guard<SharedHeap> hold(scene);
    n = make<Node>("the scene's");
  }
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) { n->a = own; }),
               std::string(kRule) +
                   "in heap [0-9]+ \\(a shared heap this thread does not hold\\), by a thread "
                   "whose heap is [0-9]+ \\(holds no shared heap\\)");
  // Holding another shared heap is not enough; the message lists it.
  SharedHeap other;
  EXPECT_DEATH(on_worker([&](Strong<Node>& own) {
                 std::lock_guard<SharedHeap> hold(other);
                 n->a = own;
               }),
               std::string(kRule) +
                   "in heap [0-9]+ \\(a shared heap this thread does not hold\\), by a thread "
                   "whose heap is [0-9]+ \\(holds shared heap [0-9]+\\)");
  n = nullptr;
  scene.collect();
}

TEST_F(RuleCheckDeathTest, AdoptingAnObjectAnotherLiveThreadStillWrites) {
  SharedHeap scene;
  Strong<Node> worker_node;
  std::mutex mu;
  std::condition_variable cv;
  bool made = false, done = false;
  std::thread worker([&] {
    Strong<Node> n = make<Node>("the worker's, not disowned");
    {
      std::lock_guard<std::mutex> g(mu);
      worker_node = n;
      made = true;
    }
    cv.notify_all();
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return done; });
  });
  {
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [&] { return made; });
  }
  EXPECT_DEATH(
      {
        std::lock_guard<SharedHeap> hold(scene);
        scene.adopt(worker_node);
      },
      "weakref: thread rule violated: adopting an object another thread still writes: object of "
      "type weakref::testing::Node at 0x[0-9a-f]+ in heap [0-9]+ \\(the heap of another "
      "thread\\), by a thread whose heap is [0-9]+ \\(holds shared heap [0-9]+\\)");
  EXPECT_DEATH(gc::adopt(worker_node), "adopting an object another thread still writes");
  worker_node = nullptr;
  {
    std::lock_guard<std::mutex> g(mu);
    done = true;
  }
  cv.notify_all();
  worker.join();
}

// -- It does not fire -------------------------------------------------------------

TEST_F(RuleCheckTest, TheOwnersWrites) {
  Strong<Node> n = make<Node>();
  Strong<Node> m = make<Node>();
  n->a = m;
  n->b = std::move(m);
  n->wa = ref<Node>(n);
  n->c = n->a;
  n->a.swap(n->b);
  Strong<Node> taken(std::move(n->c));
  n->a = nullptr;
  n->b.reset();
  n->wa.reset();
  EXPECT_FALSE(n->a || n->b || n->c);
  on_worker([](Strong<Node>& own) {  // a worker writing its own objects
    own->a = make<Node>();
    own->a->wa = ref<Node>(own);
    own->a.reset();
  });
}

// A constructor writes the members of an object nobody else can see yet (it
// is tracked after the constructor returns): on any thread.
struct Built {
  Strong<Node> first, second;
  explicit Built(const Strong<Node>& n) {
    first = n;
    second = first;
    first.reset();
  }
  void trace(gc::Visitor& v) { v(first, second); }
};

// Made by a thread whose heap is gone (a thread-local's destructor after
// the heap's owner's, see WritesAtThreadExit below): the object goes to the
// orphan heap, which that thread may not write, but its constructor may.
struct BuildsAtThreadExit {
  Strong<Node> node;
  bool orphan = false;
  bool* built = nullptr;
  ~BuildsAtThreadExit() {
    orphan = detail::tls_heap_index == detail::kOrphanHeap;
    Strong<Built> b = make<Built>(node);
    *built = orphan && b->second == node;
  }
};

TEST_F(RuleCheckTest, ThreadsHoldingASharedHeapWriteItsObjects) {
  SharedHeap scene;
  Strong<Node> root;
  {
    std::lock_guard<SharedHeap> hold(scene);
    root = make<Node>("root");
  }
  std::vector<std::thread> workers;
  for (int i = 0; i < 2; ++i)
    workers.emplace_back([&] {
      Strong<Node> built = make<Node>("built by a worker");  // its own heap
      built->b = make<Node>();                               // its own: allowed
      std::lock_guard<SharedHeap> hold(scene);
      scene.adopt(built);
      built->a = root;  // adopted: the scene's now, written holding it
      root->c = built;
    });
  for (auto& t : workers) t.join();
  // An adopted object is the adopter's: writing it without the lock would
  // be the rule broken; holding it is fine on the main thread too.
  {
    std::lock_guard<SharedHeap> hold(scene);
    root->c->b = nullptr;  // root <-> root->c stays a cycle
  }
  // Disowned objects are adopted by another thread, which then writes them.
  Strong<Node> handed;
  std::thread t([&] {
    handed = make<Node>("disowned");
    handed->a = make<Node>();
    gc::disown(handed);
  });
  t.join();
  EXPECT_EQ(gc::adopt(handed), 2U);
  handed->a = nullptr;  // the main thread's own now
  root = nullptr;
  EXPECT_GT(scene.collect(), 0U);
}

TEST_F(RuleCheckTest, ConstructionBeforeTracking) {
  Strong<Node> n = make<Node>();
  Strong<Built> b = make<Built>(n);
  on_worker([&](Strong<Node>&) { Strong<Built> there = make<Built>(n); });
  EXPECT_EQ(b->second, n);
  bool built = false;
  std::thread t([&] {
    thread_local BuildsAtThreadExit last;
    last.built = &built;
    last.node = make<Node>("the exiting thread's");
  });
  t.join();
  EXPECT_TRUE(built);
}

// The death runs on whichever thread released the last reference: its
// tp_finalize and destructor write the object's members there.
struct Finalized {
  Strong<Node> held;
  ref<Node> seen;
  void tp_finalize() {
    held = nullptr;
    seen.reset();
  }
  ~Finalized() { held = make<Node>("in the destructor"); }
  void trace(gc::Visitor& v) { v(held, seen); }
};

TEST_F(RuleCheckTest, DestructionOnAnotherThread) {
  Strong<Node> n = make<Node>("main's");
  n->a = make<Node>();
  n->wa = ref<Node>(n->a);
  Strong<Finalized> f = make<Finalized>();
  f->held = n;
  f->seen = ref<Node>(n);
  std::thread t([n = std::move(n), f = std::move(f)]() mutable {
    n.reset();  // ~Node resets its members on this thread
    f.reset();  // tp_finalize and ~Finalized write theirs on this thread
  });
  t.join();
}

// A cycle left by an exited thread (in the orphan heap) collected by the main
// thread: the collector breaks it up (clearing), and tp_finalize and the
// destructors, which write the garbage's members, run on the main thread.
struct Ring {
  Strong<Ring> next;
  Strong<Finalized> fin;
  void tp_finalize() { fin = nullptr; }
  void trace(gc::Visitor& v) { v(next, fin); }
};

TEST_F(RuleCheckTest, TheCollectorClearingACycleOfAnotherHeap) {
  gc::disable();
  ref<Ring> watch;
  ref<Finalized> watch_fin;
  std::thread t([&] {
    Strong<Ring> a = make<Ring>(), b = make<Ring>(), c = make<Ring>();
    a->next = b;
    b->next = a;
    a->fin = make<Finalized>();
    a->fin->held = make<Node>("held by a cycle");
    c->next = c;  // no tp_finalize writes it: only the clearing does
    watch = ref<Ring>(a);
    watch_fin = ref<Finalized>(a->fin);
  });
  t.join();
  EXPECT_GE(gc::collect(), 3U);
  EXPECT_FALSE(watch());
  EXPECT_FALSE(watch_fin());
  gc::enable();
}

TEST_F(RuleCheckTest, UntracedObjects) {
  Strong<Plain> p = make<Plain>(1);
  on_worker([&](Strong<Node>&) {
    p->next = make<Plain>(2);
    p->next = nullptr;
  });
  EXPECT_FALSE(p->next);
}

TEST_F(RuleCheckTest, StrongsOnTheStackAndInBuffers) {
  Strong<Node> n = make<Node>("main's");
  n->a = make<Node>();
  on_worker([&](Strong<Node>& own) {
    Strong<Node> local = n;  // reading members, copying Strongs: allowed
    local = n->a;
    local.swap(own);
    ref<Node> r = ref<Node>(local);
    r = ref<Node>(n);
    std::vector<Strong<Node>> v(3);
    v[0] = n;
    v[1] = n->a;
    v.push_back(std::move(v[0]));
    v.clear();
  });
  EXPECT_TRUE(n->a);
}

}  // namespace
}  // namespace weakref::testing
