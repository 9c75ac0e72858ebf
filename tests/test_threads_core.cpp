// Concurrency of the object model and weak references (run under TSan).
#include <atomic>
#include <barrier>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using ThreadsCoreTest = Test;

// While a process has one thread, counts are updated with plain loads and
// stores (detail/atomics.hpp, as libstdc++'s shared_ptr does). This test runs
// first in its process: it builds objects, side tables and weakrefs while
// single-threaded, then hammers the same counts from several threads, and
// the counts must come out exact.
TEST_F(ThreadsCoreTest, CountsMadeSingleThreadedStayExactWhenThreadsStart) {
  struct Payload {
    int value = 7;
  };
  const bool started_single = detail::single_threaded();
  std::vector<Strong<Payload>> objs;
  std::vector<ref<Payload>> refs;
  for (int i = 0; i < 64; ++i) {
    objs.push_back(make<Payload>());
    if (i % 2) refs.emplace_back(objs.back());  // half with a side table
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 500; ++round)
        for (std::size_t i = 0; i < objs.size(); ++i) {
          Strong<Payload> copy = objs[i];
          if (i % 2) {
            Strong<Payload> locked = refs[i / 2]();
            EXPECT_EQ(locked->value, 7);
            ref<Payload> again(copy);  // the basic ref pinned while single-threaded
            EXPECT_TRUE(again.is(refs[i / 2]));
          }
        }
    });
  for (auto& t : threads) t.join();
  EXPECT_FALSE(detail::single_threaded());
  for (const Strong<Payload>& o : objs) EXPECT_EQ(o.use_count(), 1U);
  objs.clear();
  for (const ref<Payload>& r : refs) EXPECT_FALSE(r());
  if (!started_single) GTEST_SKIP() << "the process already had threads: nothing to transition";
}

// The weakref race: one thread dereferences a weakref while another releases
// the last strong reference. Each lock either sees the live object (and keeps
// it alive while using it) or null; never a destroyed object.
TEST_F(ThreadsCoreTest, LockRacesWithLastRelease) {
  struct Payload {
    std::atomic<int> alive{1};
    int data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    ~Payload() { alive.store(0); }
  };
  constexpr int kRounds = 2000;
  for (int round = 0; round < kRounds; ++round) {
    Strong<Payload> obj = make<Payload>();
    ref<Payload> r(obj);
    std::atomic<int> callbacks{0};
    ref<Payload> rc(obj, [&](const ref<Payload>&) { callbacks.fetch_add(1); });
    std::barrier sync(2);
    std::thread reader([&] {
      sync.arrive_and_wait();
      for (int i = 0; i < 50; ++i) {
        if (Strong<Payload> s = r()) {
          EXPECT_EQ(s->alive.load(), 1);
          int sum = 0;
          for (int v : s->data) sum += v;
          EXPECT_EQ(sum, 36);
        }
      }
    });
    sync.arrive_and_wait();
    obj.reset();
    reader.join();
    EXPECT_FALSE(r());
    EXPECT_EQ(callbacks.load(), 1);
  }
}

// Copies of the same object made and dropped on many threads.
TEST_F(ThreadsCoreTest, ConcurrentCopiesAndWeakrefCreation) {
  Strong<Node> shared = make<Node>("S");
  std::atomic<int> callbacks{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Strong<Node> copy = shared;
        ref<Node> basic(copy);
        ref<Node> cb(copy, [&](const ref<Node>&) { callbacks.fetch_add(1); });
        proxy<Node> p(copy);
        EXPECT_EQ(p->label, "S");
        EXPECT_TRUE(basic() == copy);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_EQ(getweakrefcount(shared), 0U);
  shared.reset();
  EXPECT_EQ(callbacks.load(), 0);  // every callback weakref died first
}

// The first weak reference races with strong copies (the inline -> side
// table switch of the count word).
TEST_F(ThreadsCoreTest, SideTableSwitchRacesWithCounting) {
  for (int round = 0; round < 500; ++round) {
    Strong<Plain> obj = make<Plain>();
    std::barrier sync(3);
    std::thread copier([&] {
      sync.arrive_and_wait();
      for (int i = 0; i < 100; ++i) {
        Strong<Plain> c = obj;
      }
    });
    std::thread weak_maker([&] {
      sync.arrive_and_wait();
      ref<Plain> r(obj);
      EXPECT_TRUE(r());
    });
    sync.arrive_and_wait();
    copier.join();
    weak_maker.join();
    EXPECT_EQ(obj.use_count(), 1);
  }
}

// ref(obj) on an object that has a basic ref takes it with one increment
// and no lock (the side table pins it until the object dies). Here threads
// make and drop basic refs (and callback refs, which take the lock) on an
// object while one of them releases its last strong reference: each ref is
// the object's basic one while it lives, its r() is the object or null, and
// every weakref is freed (the ASan preset's leak checker runs this too).
TEST_F(ThreadsCoreTest, BasicRefsMadeAndDroppedWhileTheObjectDies) {
  for (int round = 0; round < 300; ++round) {
    Strong<Plain> obj = make<Plain>(round % 2);
    ref<Plain> outer;
    if (round % 2) outer = ref<Plain>(obj);  // made before the threads, or by them
    std::atomic<int> callbacks{0};
    std::barrier sync(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
      threads.emplace_back([&, copy = obj, t]() mutable {
        sync.arrive_and_wait();
        for (int i = 0; i < 40; ++i) {
          ref<Plain> r(copy);
          EXPECT_TRUE(r() == copy);
          if (round % 2) {
            EXPECT_TRUE(r.is(outer));  // the basic ref: reused while obj lives
          }
          if (t == 0 && i % 8 == 0) ref<Plain> cb(copy, [&] { callbacks.fetch_add(1); });
        }
        ref<Plain> last(copy);
        copy.reset();  // the last of these releases kills the object
        if (Strong<Plain> s = last()) {
          EXPECT_EQ(s->value, round % 2);
        }
      });
    obj.reset();
    sync.arrive_and_wait();
    for (auto& t : threads) t.join();
    EXPECT_FALSE(outer());
    EXPECT_EQ(callbacks.load(), 0);  // each callback ref died before the object
  }
}

// Threads make the first weakrefs of an object at once: each first weakref
// is made with a side table in front of it, in one block; one side table is
// published, the other weakrefs join it (keeping their blocks), and nothing
// leaks (the ASan preset's leak checker runs this too). The basic ref's
// thread holds a spare block first (a side table freed with its basic ref),
// so that its publication can lose from basic_weak's frameless path too.
TEST_F(ThreadsCoreTest, FirstWeakrefsOfAnObjectRace) {
  for (int round = 0; round < 500; ++round) {
    Strong<Plain> obj = make<Plain>();
    std::atomic<int> calls{0};
    std::barrier sync(4);
    ref<Plain> basic, with_callback;
    proxy<Plain> px;
    finalize fin;
    std::thread a([&] {
      {
        Strong<Plain> other = make<Plain>();
        ref<Plain> first(other);
      }
      sync.arrive_and_wait();
      basic = ref<Plain>(obj);
    });
    std::thread b([&] {
      sync.arrive_and_wait();
      with_callback = ref<Plain>(obj, [&] { calls.fetch_add(1); });
    });
    std::thread c([&] {
      sync.arrive_and_wait();
      fin = finalize(obj, [&] { calls.fetch_add(1); });
    });
    sync.arrive_and_wait();
    px = proxy<Plain>(obj);
    a.join();
    b.join();
    c.join();
    EXPECT_EQ(getweakrefcount(obj), 4U);
    EXPECT_TRUE(ref<Plain>(obj).is(basic));
    obj.reset();
    EXPECT_EQ(calls.load(), 2);
    EXPECT_FALSE(basic() || with_callback() || px.lock());
  }
}

// getweakrefcount / getweakrefs race with weakrefs coming and going, the
// basic ref's lock-free ones included: whatever they report is alive, and
// the pin alone is never counted.
TEST_F(ThreadsCoreTest, GetweakrefsRacesWithWeakrefsComingAndGoing) {
  Strong<Node> obj = make<Node>("S");
  std::atomic<bool> stop{false};
  std::vector<std::thread> makers;
  for (int t = 0; t < 2; ++t)
    makers.emplace_back([&, t] {
      while (!stop.load()) {
        ref<Node> basic(obj);
        if (t == 1) {
          proxy<Node> p(obj);
          ref<Node> cb(obj, [](const ref<Node>&) {});
        }
      }
    });
  for (int i = 0; i < 2000; ++i) {
    EXPECT_LE(getweakrefcount(obj), 4U);
    for (const ref<>& r : getweakrefs(obj)) EXPECT_TRUE(r() == obj);
  }
  stop.store(true);
  for (auto& t : makers) t.join();
  EXPECT_EQ(getweakrefcount(obj), 0U);
  EXPECT_TRUE(getweakrefs(obj).empty());
}

// The collector clears a basic ref that only garbage holds while its
// referent lives, racing with other threads' lock-free ref(obj) on the same
// object: a ref made meanwhile either keeps the basic ref alive (then it is
// not garbage and stays uncleared) or is a new one. Never a cleared ref to a
// live object.
TEST_F(ThreadsCoreTest, CollectorClearsABasicRefWhileOthersTakeIt) {
  Strong<Node> x = make<Node>("X");
  std::atomic<bool> stop{false};
  std::atomic<long> made{0};
  std::thread taker([&] {
    while (!stop.load()) {
      ref<Node> r(x);
      EXPECT_TRUE(r() == x);
      made.fetch_add(1);
    }
  });
  unsigned spins = 0;
  while (made.load() == 0) detail::spin_pause(spins);
  for (int i = 0; i < 2000 || made.load() < 20000; ++i) {
    {
      Strong<Node> g = make<Node>("G");
      g->a = g;
      g->wa = ref<Node>(x);  // x's basic ref, held by garbage (and the taker, now and then)
    }
    gc::collect();
  }
  stop.store(true);
  taker.join();
  EXPECT_GT(made.load(), 0);
  EXPECT_EQ(getweakrefcount(x), 0U);
  ref<Node> r(x);
  EXPECT_TRUE(r() == x);
}

// peek() copies func outside the registry lock while f() and the object's
// death race to pop the finalizer: func runs once, and no copy reads a
// destroyed func.
TEST_F(ThreadsCoreTest, FinalizerPeekRacesWithCallAndDeath) {
  for (int round = 0; round < 300; ++round) {
    Strong<Node> n = make<Node>();
    std::atomic<int> calls{0};
    auto payload = std::make_shared<int>(round);
    finalize f(n, [&calls, payload] { calls.fetch_add(*payload >= 0 ? 1 : 0); });
    payload.reset();
    std::barrier sync(3);
    std::thread peeker([&] {
      sync.arrive_and_wait();
      for (int i = 0; i < 20; ++i)
        if (std::optional<finalize::info> info = f.peek()) {
          EXPECT_TRUE(info->func);
        }
    });
    std::thread killer([&] {
      sync.arrive_and_wait();
      if (round % 2) n.reset();
    });
    sync.arrive_and_wait();
    if (round % 2 == 0) f();
    peeker.join();
    killer.join();
    n.reset();
    EXPECT_EQ(calls.load(), 1);
  }
}

// The handles of a callback ref and of a finalizer go on two threads while a
// third kills their referent. The death takes its own reference to run the
// callback; a handle that finds the weakref cleared and itself its only
// holder frees it with no decrement (weak_release): it must never do so
// while the death still holds it. A callback runs at most once, and only
// with a live handle to its weakref; a finalizer (held by the registry)
// always runs.
TEST_F(ThreadsCoreTest, HandlesGoWhileTheirReferentDies) {
  struct Payload {
    int data[4] = {1, 2, 3, 4};
  };
  for (int round = 0; round < 1000; ++round) {
    Strong<Payload> obj = make<Payload>();
    std::atomic<int> callbacks{0};
    std::atomic<int> finalized{0};
    std::optional<ref<Payload>> r;
    r.emplace(obj, [&](const ref<Payload>& self) {
      EXPECT_FALSE(self());
      callbacks.fetch_add(1);
    });
    std::optional<ref<Payload>> copy = *r;
    std::optional<finalize> f;
    f.emplace(obj, [&] { finalized.fetch_add(1); });
    std::optional<finalize> f_copy = *f;
    std::barrier sync(3);
    std::thread a([&] {
      sync.arrive_and_wait();
      if (round % 2) {
        copy.reset();
        f.reset();
      } else {
        f.reset();
        copy.reset();
      }
    });
    std::thread b([&] {
      sync.arrive_and_wait();
      r.reset();
      f_copy.reset();
    });
    sync.arrive_and_wait();
    obj.reset();
    a.join();
    b.join();
    EXPECT_LE(callbacks.load(), 1);
    EXPECT_EQ(finalized.load(), 1);
  }
}

// After a death on one thread, two threads drop the two handles of its
// callback ref and two of its finalizer at once: each weakref goes exactly
// once, whichever of them finds itself the only holder (a load, no
// decrement) or brings the count there (weak_release).
TEST_F(ThreadsCoreTest, HandlesOfADeadReferentGoTogether) {
  for (int round = 0; round < 1000; ++round) {
    Strong<Node> n = make<Node>();
    std::atomic<int> callbacks{0};
    std::atomic<int> finalized{0};
    std::optional<ref<Node>> r;
    r.emplace(n, [&](const ref<Node>&) { callbacks.fetch_add(1); });
    std::optional<ref<Node>> copy = *r;
    std::optional<finalize> f;
    f.emplace(n, [&] { finalized.fetch_add(1); });
    std::optional<finalize> f_copy = *f;
    std::thread([moved = std::move(n)]() mutable { moved.reset(); }).join();
    EXPECT_EQ(callbacks.load(), 1);
    EXPECT_EQ(finalized.load(), 1);
    EXPECT_FALSE((*r)());
    std::barrier sync(2);
    std::thread other([&] {
      sync.arrive_and_wait();
      copy.reset();
      f_copy.reset();
    });
    sync.arrive_and_wait();
    f.reset();
    r.reset();
    other.join();
  }
  EXPECT_EQ(g_live.load(), 0);
}

// The death borrows its one callback weakref (weak_object.hpp): another
// thread that drops the last handle while the callback runs hands its
// release to the death, which settles it when it is done. Here the callback
// waits until the other thread's release has returned (so the hand-over is
// certain), then the death frees the weakref: nothing stays owed.
TEST_F(ThreadsCoreTest, ALastHandleDroppedDuringTheCallbackGoesToTheDeath) {
  for (int round = 0; round < 200; ++round) {
    std::atomic<int> stage{0};
    std::atomic<int> calls{0};
    Strong<Node> n = make<Node>();
    std::optional<ref<Node>> holder;
    holder.emplace(n, [&](const ref<Node>& self) {
      calls.fetch_add(1);
      stage.store(1);
      while (stage.load() != 2) std::this_thread::yield();
      EXPECT_FALSE(self());  // still readable: the death holds it
    });
    std::thread other([&] {
      while (stage.load() != 1) std::this_thread::yield();
      holder.reset();
      stage.store(2);
    });
    n.reset();
    other.join();
    EXPECT_EQ(calls.load(), 1);
    EXPECT_EQ(detail::owed_releases(), 0U);
  }
}

// The same release racing with every moment of the death (before it, during
// the callback, during ~T, after): the weakref goes exactly once, and its
// callback runs at most once (not at all when the ref went first, as in
// Python). Also for a finalizer whose handle is dropped meanwhile: it runs
// once whatever the order (its registration holds it).
TEST_F(ThreadsCoreTest, LastHandlesRaceWithTheDeathThatBorrowsThem) {
  std::barrier sync(2);
  for (int round = 0; round < 2000; ++round) {
    std::atomic<int> calls{0};
    std::atomic<int> finalized{0};
    Strong<Node> n = make<Node>();
    Strong<Node> m = make<Node>();
    std::optional<ref<Node>> holder;
    holder.emplace(n, [&](const ref<Node>& self) {
      calls.fetch_add(1);
      EXPECT_FALSE(self());
    });
    std::optional<finalize> f;
    f.emplace(m, [&] { finalized.fetch_add(1); });
    std::thread other([&] {
      sync.arrive_and_wait();
      for (int spin = round % 64; spin; --spin) std::atomic_signal_fence(std::memory_order_seq_cst);
      holder.reset();
      f.reset();
    });
    sync.arrive_and_wait();
    n.reset();
    m.reset();
    other.join();
    EXPECT_LE(calls.load(), 1);  // none when the ref went first, as in Python
    EXPECT_EQ(finalized.load(), 1);
    EXPECT_EQ(detail::owed_releases(), 0U);
  }
}

// Callbacks run on the thread that releases the last strong reference.
TEST_F(ThreadsCoreTest, CallbackRunsOnReleasingThread) {
  Strong<Node> n = make<Node>();
  std::thread::id where;
  ref<Node> r(n, [&](const ref<Node>&) { where = std::this_thread::get_id(); });
  std::thread t([moved = std::move(n)]() mutable { moved.reset(); });
  const std::thread::id releaser = t.get_id();
  t.join();
  EXPECT_EQ(where, releaser);
}

// Finalizers called from several threads at once run exactly once.
TEST_F(ThreadsCoreTest, FinalizerRunsOnce) {
  for (int round = 0; round < 300; ++round) {
    Strong<Node> n = make<Node>();
    std::atomic<int> calls{0};
    finalize f(n, [&] { calls.fetch_add(1); });
    std::barrier sync(3);
    std::thread a([&] {
      sync.arrive_and_wait();
      f();
    });
    std::thread b([&] {
      sync.arrive_and_wait();
      n.reset();
    });
    sync.arrive_and_wait();
    f();
    a.join();
    b.join();
    EXPECT_EQ(calls.load(), 1);
  }
}

}  // namespace
}  // namespace weakref::testing
