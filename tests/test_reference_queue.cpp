// weakref::ReferenceQueue (reference_queue.hpp): what is posted and when,
// the order of entries, deferred callbacks and finalizers, the collector,
// a queue destroyed or closed first, waits, exit. Threads racing on a
// queue are in test_threads_reference_queue.cpp.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ReferenceQueueTest = Test;
using namespace std::chrono_literals;

// The owner's data for each queued ref, found by the dead ref's identity
// (is(): refs to one object compare equal while it lives, as CPython's).
using Names = std::vector<std::pair<ref<Node>, std::string>>;
std::vector<std::string> labels_of(std::vector<ReferenceQueue::Entry> entries, const Names& names) {
  std::vector<std::string> out;
  for (auto& e : entries)
    for (const auto& [r, name] : names)
      if (e.as_ref<Node>().is(r)) out.push_back(name);
  return out;
}

TEST_F(ReferenceQueueTest, EmptyQueueGivesNothing) {
  ReferenceQueue q;
  EXPECT_FALSE(q.poll());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.size(), 0U);
  EXPECT_TRUE(q.drain().empty());
  EXPECT_EQ(q.run_pending(), 0U);
}

TEST_F(ReferenceQueueTest, DeathPostsTheRefItself) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  ref<Node> r = q.ref(n);
  EXPECT_EQ(r()->label, "n");
  EXPECT_FALSE(r.is(ref<Node>(n))) << "a queued ref is never the basic ref";
  EXPECT_EQ(getweakrefcount(n), 1U);
  EXPECT_TRUE(r.has_callback()) << "its callback is the post (Python: queue.put)";
  EXPECT_FALSE(q.poll()) << "nothing is posted while the object lives";
  n.reset();
  EXPECT_FALSE(r());
  EXPECT_EQ(q.size(), 1U);
  std::optional<ReferenceQueue::Entry> e = q.poll();
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->is_finalizer());
  EXPECT_TRUE(e->as_ref<Node>().is(r));
  EXPECT_EQ(e->as_ref<Node>(), r);
  EXPECT_EQ(std::hash<ref<Node>>{}(e->as_ref<Node>()), std::hash<ref<Node>>{}(r));
  EXPECT_FALSE(e->as_finalize().alive());
  (*e)();  // nothing to run
  EXPECT_FALSE(q.poll());
  EXPECT_TRUE(q.empty());
}

TEST_F(ReferenceQueueTest, OwnerMapsEntriesBackToItsData) {
  ReferenceQueue q;
  std::unordered_map<ref<Node>, std::string> names;
  std::vector<Strong<Node>> nodes;
  for (const char* s : {"a", "b", "c"}) {
    nodes.push_back(make<Node>(s));
    names.emplace(q.ref(nodes.back()), std::string("data of ") + s);
  }
  nodes.erase(nodes.begin() + 1);  // b dies
  auto e = q.poll();
  ASSERT_TRUE(e);
  EXPECT_EQ(names.at(e->as_ref<Node>()), "data of b");
  names.erase(e->as_ref<Node>());
  EXPECT_EQ(names.size(), 2U);
}

TEST_F(ReferenceQueueTest, EntriesComeInDeathOrderNewestFirstWithinOne) {
  ReferenceQueue q;
  Names names;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  names.emplace_back(q.ref(a), "a1");
  names.emplace_back(q.ref(b), "b1");
  names.emplace_back(q.ref(a), "a2");
  names.emplace_back(q.ref(a), "a3");
  names.emplace_back(q.ref(b), "b2");
  a.reset();
  b.reset();
  EXPECT_EQ(labels_of(q.drain(), names), (std::vector<std::string>{"a3", "a2", "a1", "b2", "b1"}));
}

TEST_F(ReferenceQueueTest, PostsTakeTheirPlaceAmongTheObjectsCallbacks) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  std::vector<std::size_t> seen;  // queue size when each callback runs
  ref<Node> first(n, [&](const ref<Node>&) { seen.push_back(q.size()); });
  ref<Node> queued = q.ref(n);
  ref<Node> last(n, [&](const ref<Node>&) { seen.push_back(q.size()); });
  n.reset();
  EXPECT_EQ(seen, (std::vector<std::size_t>{0, 1}));  // newest first
  EXPECT_EQ(q.size(), 1U);
}

TEST_F(ReferenceQueueTest, CallbackIsDeferredToTheEntry) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  ref<Node> seen_ref;
  ref<Node> r = q.ref(n, [&](const ref<Node>& dead) {
    ++calls;
    seen_ref = dead;
    EXPECT_FALSE(dead());
  });
  n.reset();
  EXPECT_EQ(calls, 0) << "nothing runs on the dying thread";
  EXPECT_FALSE(r.has_callback());
  auto e = q.poll();
  ASSERT_TRUE(e);
  (*e)();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(seen_ref.is(r));
  (*e)();  // once
  EXPECT_EQ(calls, 1);
}

TEST_F(ReferenceQueueTest, CallbackFormsAndNullCallback) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int by_value = 0, no_arg = 0;
  ref<Node> r1 = q.ref(n, [&](ref<Node> dead) { by_value += dead.is(ref<Node>()) ? 0 : 1; });
  ref<Node> r2 = q.ref(n, [&] { ++no_arg; });
  std::function<void(ref<Node>)> none;
  ref<Node> r3 = q.ref(n, none);
  ref<Node> r4 = q.ref(n, nullptr);
  EXPECT_EQ(getweakrefcount(n), 4U);
  n.reset();
  EXPECT_EQ(q.run_pending(), 4U);
  EXPECT_EQ(by_value, 1);
  EXPECT_EQ(no_arg, 1);
}

TEST_F(ReferenceQueueTest, DroppedEntryDiscardsItsCallbackUncalled) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  auto token = std::make_shared<int>(0);
  int calls = 0;
  ref<Node> r = q.ref(n, [&calls, token](const ref<Node>&) { ++calls; });
  n.reset();
  EXPECT_EQ(token.use_count(), 2);
  {
    auto e = q.poll();
    ASSERT_TRUE(e);
  }
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(token.use_count(), 1) << "the callback was destroyed with its entry";
  EXPECT_FALSE(r());
}

TEST_F(ReferenceQueueTest, RefDroppedBeforeTheDeathIsNotPosted) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  (void)q.ref(n, [&] { ++calls; });
  (void)q.ref(n);
  ref<Node> kept = q.ref(n);
  n.reset();
  auto entries = q.drain();
  ASSERT_EQ(entries.size(), 1U);
  EXPECT_TRUE(entries[0].as_ref<Node>().is(kept));
}

TEST_F(ReferenceQueueTest, CollectorPostsRefsToGarbage) {
  ReferenceQueue q;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  a->a = b;
  b->a = a;
  int calls = 0;
  ref<Node> ra = q.ref(a, [&] { ++calls; });
  ref<Node> rb = q.ref(b);
  a.reset();
  b.reset();
  EXPECT_FALSE(q.poll()) << "the cycle is alive until collected";
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_FALSE(ra());
  auto entries = q.drain();
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_EQ(calls, 0);
  for (auto& e : entries) {
    EXPECT_TRUE(e.as_ref<Node>().is(ra) || e.as_ref<Node>().is(rb));
    e();
  }
  EXPECT_EQ(calls, 1);
}

TEST_F(ReferenceQueueTest, RefThatIsGarbageItselfIsNotPosted) {
  ReferenceQueue q;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  a->a = b;
  b->a = a;
  a->wa = q.ref(b);  // held only by the garbage
  a.reset();
  b.reset();
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_FALSE(q.poll());
}

TEST_F(ReferenceQueueTest, FinalizerRunsWhenItsEntryRuns) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  std::vector<int> got;
  finalize f = q.finalize(
      n, [&got](int x) { got.push_back(x); }, 42);
  EXPECT_TRUE(f.alive());
  EXPECT_EQ(getweakrefcount(n), 1U);
  n.reset();
  EXPECT_TRUE(got.empty()) << "not on the dying thread";
  EXPECT_TRUE(f.alive()) << "posted, not run yet";
  EXPECT_FALSE(f.peek());
  auto e = q.poll();
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->is_finalizer());
  EXPECT_TRUE(e->as_finalize().is(f));
  EXPECT_TRUE(e->as_ref<Node>().is(ref<Node>())) << "an empty ref for a finalizer";
  (*e)();
  EXPECT_EQ(got, (std::vector<int>{42}));
  EXPECT_FALSE(f.alive());
  (*e)();
  EXPECT_EQ(got.size(), 1U);
}

TEST_F(ReferenceQueueTest, FinalizerCalledFirstIsNeverPosted) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  finalize f = q.finalize(n, [&calls] { ++calls; });
  finalize g = q.finalize(n, [&calls] { calls += 10; });
  EXPECT_TRUE(f());
  EXPECT_TRUE(g.detach());
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(q.poll());
}

TEST_F(ReferenceQueueTest, PostedFinalizerCalledByHandRunsOnce) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  finalize f = q.finalize(n, [&calls] { ++calls; });
  n.reset();
  EXPECT_TRUE(f());
  EXPECT_FALSE(f.alive());
  auto e = q.poll();
  ASSERT_TRUE(e);
  (*e)();
  EXPECT_EQ(calls, 1);
}

TEST_F(ReferenceQueueTest, DroppedFinalizerEntryDetachesIt) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  auto token = std::make_shared<int>(0);
  int calls = 0;
  finalize f = q.finalize(n, [&calls, token] { ++calls; });
  n.reset();
  q.poll().reset();
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(f.alive());
  EXPECT_EQ(token.use_count(), 1);
}

TEST_F(ReferenceQueueTest, FinalizersAndRefsShareTheOrder) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  std::vector<std::string> order;
  ref<Node> r1 = q.ref(n, [&] { order.push_back("r1"); });
  finalize f = q.finalize(n, [&] { order.push_back("f"); });
  ref<Node> r2 = q.ref(n, [&] { order.push_back("r2"); });
  n.reset();
  EXPECT_EQ(q.run_pending(), 3U);
  EXPECT_EQ(order, (std::vector<std::string>{"r2", "f", "r1"}));
}

TEST_F(ReferenceQueueTest, ExceptionPropagatesToTheRunnerAndTheRestStayQueued) {
  ReferenceQueue q;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  int calls = 0;
  ref<Node> ra = q.ref(a, [] { throw std::runtime_error("boom"); });
  ref<Node> rb = q.ref(b, [&] { ++calls; });
  a.reset();
  b.reset();
  EXPECT_THROW(q.run_pending(), std::runtime_error);
  EXPECT_EQ(q.size(), 1U);
  EXPECT_EQ(q.run_pending(), 1U);
  EXPECT_EQ(calls, 1);
}

TEST_F(ReferenceQueueTest, QueueDestroyedFirstDiscardsCallbacksAndRunsFinalizers) {
  auto token = std::make_shared<int>(0);
  int callbacks = 0;
  std::vector<std::string> finalized;
  Strong<Node> pending_ref = make<Node>("p");
  Strong<Node> pending_fin = make<Node>("pf");
  Strong<Node> later_ref = make<Node>("l");
  Strong<Node> later_fin = make<Node>("lf");
  ref<Node> r1, r2;
  finalize f1, f2;
  std::optional<ReferenceQueue::Entry> kept;
  {
    ReferenceQueue q;
    r1 = q.ref(pending_ref, [&callbacks, token] { ++callbacks; });
    f1 = q.finalize(pending_fin, [&finalized, token] { finalized.push_back("pending"); });
    r2 = q.ref(later_ref, [&callbacks, token] { ++callbacks; });
    f2 = q.finalize(later_fin, [&finalized, token] { finalized.push_back("later"); });
    Strong<Node> k = make<Node>("k");
    ref<Node> rk = q.ref(k);
    k.reset();
    kept = q.poll();  // an entry taken out survives its queue
    pending_ref.reset();
    pending_fin.reset();
    EXPECT_EQ(q.size(), 2U);
    EXPECT_EQ(token.use_count(), 5);
    EXPECT_TRUE(finalized.empty());
  }
  EXPECT_EQ(token.use_count(), 3) << "pending entries settled by the destructor";
  EXPECT_EQ(finalized, (std::vector<std::string>{"pending"})) << "on the destroying thread";
  EXPECT_FALSE(f1.alive());
  later_ref.reset();
  later_fin.reset();
  EXPECT_EQ(token.use_count(), 1) << "later deaths settled on the dying thread";
  EXPECT_EQ(finalized, (std::vector<std::string>{"pending", "later"}));
  EXPECT_FALSE(f2.alive());
  EXPECT_FALSE(r2());
  EXPECT_EQ(callbacks, 0) << "a ref's deferred callback is never run without its queue";
  ASSERT_TRUE(kept && *kept);
  (*kept)();
  EXPECT_FALSE(kept->as_ref<Node>()());
}

TEST_F(ReferenceQueueTest, FinalizerOfADestroyedQueueReportsItsException) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>("n");
  {
    ReferenceQueue q;
    q.finalize(n, [] { throw std::runtime_error("late"); });
    n.reset();
  }
  ASSERT_EQ(capture.messages.size(), 1U);
  EXPECT_THAT(capture.messages[0], ::testing::HasSubstr("late"));
}

TEST_F(ReferenceQueueTest, CloseReturnsThePendingEntriesInOrder) {
  ReferenceQueue q;
  Names names;
  Strong<Node> a = make<Node>("a");
  Strong<Node> b = make<Node>("b");
  Strong<Node> c = make<Node>("c");
  names.emplace_back(q.ref(a), "a");
  names.emplace_back(q.ref(b), "b");
  int late = 0;
  ref<Node> rc = q.ref(c, [&late] { ++late; });
  b.reset();
  a.reset();
  EXPECT_EQ(labels_of(q.close(), names), (std::vector<std::string>{"b", "a"}));
  EXPECT_TRUE(q.close().empty());
  c.reset();
  EXPECT_EQ(late, 0);
  EXPECT_FALSE(q.poll());
  EXPECT_FALSE(q.pop()) << "a closed queue does not block";
  EXPECT_FALSE(q.wait_for(1h));
}

TEST_F(ReferenceQueueTest, WaitsTimeOutWhenNothingComes) {
  ReferenceQueue q;
  EXPECT_FALSE(q.wait_for(1ms));
  EXPECT_FALSE(q.wait_for(0s));
  EXPECT_FALSE(q.wait_until(std::chrono::system_clock::now() + 1ms));
  EXPECT_FALSE(q.wait_until(std::chrono::steady_clock::now() - 1s));
}

TEST_F(ReferenceQueueTest, WaitsReturnWhatIsPending) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  ref<Node> r = q.ref(n);
  n.reset();
  auto e = q.wait_for(0s);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->as_ref<Node>().is(r));
  Strong<Node> m = make<Node>("m");
  ref<Node> rm = q.ref(m);
  m.reset();
  EXPECT_TRUE(q.pop().as_ref<Node>().is(rm));
}

TEST_F(ReferenceQueueTest, DeathOnAnotherThreadWakesTheOwner) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  int calls = 0;
  const std::thread::id owner = std::this_thread::get_id();
  ref<Node> r = q.ref(n, [&] {
    ++calls;
    EXPECT_EQ(std::this_thread::get_id(), owner);
  });
  std::thread killer([n = std::move(n)]() mutable { n.reset(); });
  ReferenceQueue::Entry e = q.pop();  // blocks until the post
  ASSERT_TRUE(e);
  EXPECT_TRUE(e.as_ref<Node>().is(r));
  e();
  EXPECT_EQ(calls, 1);
  killer.join();
}

TEST_F(ReferenceQueueTest, DeathsAtThreadExitArePosted) {
  ReferenceQueue q;
  Strong<Node> n = make<Node>("n");
  ref<Node> r = q.ref(n);
  struct Holder {
    Strong<Node> n;
    ~Holder() { n.reset(); }
  };
  std::thread t([&q, n = std::move(n)]() mutable {
    thread_local Holder h;
    h.n = std::move(n);
    EXPECT_FALSE(q.poll());
  });
  auto e = q.wait_until(std::chrono::steady_clock::now() + 1h);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->as_ref<Node>().is(r));
  t.join();
}

// The exit step runs queued finalizers that have not run: one whose object
// lives, one posted and pending; a static queue's destruction afterwards
// discards the rest.
TEST(ReferenceQueueExitTest, ExitStepRunsQueuedFinalizers) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // (the sanitizers' threads)
  EXPECT_EXIT(
      {
        static ReferenceQueue q;
        static Strong<Node> alive = make<Node>("alive");
        Strong<Node> dead = make<Node>("dead");
        q.finalize(alive, [] { std::fputs("alive finalizer\n", stderr); });
        q.finalize(dead, [] { std::fputs("posted finalizer\n", stderr); });
        dead.reset();
        std::exit(q.size() == 1 ? 0 : 3);
      },
      ::testing::ExitedWithCode(0), "posted finalizer\nalive finalizer\n");
}

}  // namespace
}  // namespace weakref::testing
