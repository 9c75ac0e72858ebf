// weakref::finalize: Python's weakref.finalize.
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <sstream>

#include "support.hpp"

// Allocation can be made to fail (the exit step must not need it). Out of
// line, so that no caller sees malloc's block given to operator delete.
namespace {
std::atomic<bool> g_fail_new{false};
}
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (g_fail_new.load(std::memory_order_relaxed)) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace weakref::testing {
namespace {

using FinalizeTest = Test;

TEST_F(FinalizeTest, RunsOnDeathWithItsArguments) {
  Strong<Node> n = make<Node>();
  std::vector<int> got;
  finalize f(
      n,
      [&](int a, int b) {
        got = {a, b};
      },
      1, 2);
  EXPECT_TRUE(f.alive());
  n.reset();
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  EXPECT_FALSE(f.alive());
}

TEST_F(FinalizeTest, CallRunsAtMostOnce) {
  Strong<Node> n = make<Node>();
  int calls = 0;
  finalize f(n, [&] { ++calls; });
  EXPECT_TRUE(f());
  EXPECT_FALSE(f());
  n.reset();
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(f.alive());
}

TEST_F(FinalizeTest, CallPropagatesTheException) {
  Strong<Node> n = make<Node>();
  finalize f(n, [] { throw std::runtime_error("fin"); });
  EXPECT_THROW(f(), std::runtime_error);
  EXPECT_FALSE(f.alive());
}

TEST_F(FinalizeTest, ExceptionOnDeathGoesToHook) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  finalize f(n, [] { throw std::runtime_error("fin"); });
  n.reset();
  ASSERT_EQ(capture.messages.size(), 1U);
  EXPECT_EQ(capture.messages[0], "std::runtime_error: fin");
  EXPECT_THAT(capture.objects[0],
              ::testing::MatchesRegex("<finalize object at 0x[0-9a-f]+; dead>"));
}

TEST_F(FinalizeTest, PeekAndDetach) {
  Strong<Node> n = make<Node>("A");
  int calls = 0;
  finalize f(n, [&] { ++calls; });
  auto info = f.peek();
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->object == n);
  EXPECT_EQ(getweakrefcount(n), 1U);
  info->func();  // the bound function itself; f stays alive
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(f.alive());
  auto detached = f.detach();
  ASSERT_TRUE(detached);
  EXPECT_EQ(exact_pointer_cast<Node>(detached->object)->label, "A");
  EXPECT_FALSE(f.alive());
  EXPECT_FALSE(f.detach());
  EXPECT_FALSE(f.peek());
  EXPECT_EQ(getweakrefcount(n), 0U);
  info.reset();
  detached.reset();
  n.reset();
  EXPECT_EQ(calls, 1);
}

TEST_F(FinalizeTest, RegistryKeepsItAliveWithoutHandles) {
  Strong<Node> n = make<Node>();
  int calls = 0;
  {
    finalize(n, [&] { ++calls; });
  }
  n.reset();
  EXPECT_EQ(calls, 1);
}

TEST_F(FinalizeTest, CopiesAreTheSameFinalizer) {
  Strong<Node> n = make<Node>();
  finalize f(n, [] {});
  finalize g = f;
  EXPECT_TRUE(f.is(g));
  EXPECT_TRUE(f == g);
  EXPECT_EQ(std::hash<finalize>{}(f), std::hash<finalize>{}(g));
  g();
  EXPECT_FALSE(f.alive());
}

TEST_F(FinalizeTest, AtexitFlag) {
  Strong<Node> n = make<Node>();
  finalize f(n, [] {});
  EXPECT_TRUE(f.atexit());
  f.atexit(false);
  EXPECT_FALSE(f.atexit());
  f.atexit(true);
  EXPECT_TRUE(f.atexit());
  f.detach();
  EXPECT_FALSE(f.atexit());
  finalize empty;
  EXPECT_FALSE(empty.alive());
  EXPECT_FALSE(empty());
}

TEST_F(FinalizeTest, RunsAmongCallbacksInRegistrationOrder) {
  Strong<Node> n = make<Node>();
  std::vector<std::string> order;
  ref<Node> r1(n, [&](const ref<Node>&) { order.push_back("r1"); });
  finalize f(n, [&] { order.push_back("f"); });
  ref<Node> r2(n, [&](const ref<Node>&) { order.push_back("r2"); });
  n.reset();
  EXPECT_EQ(order, (std::vector<std::string>{"r2", "f", "r1"}));
}

TEST_F(FinalizeTest, StreamsLikeCPython) {
  Strong<Node> n = make<Node>();
  finalize f(n, [] {});
  std::ostringstream alive;
  alive << f;
  EXPECT_THAT(alive.str(),
              ::testing::MatchesRegex(
                  "<finalize object at 0x[0-9a-f]+; for 'weakref::testing::Node' at 0x[0-9a-f]+>"));
  n.reset();
  std::ostringstream dead;
  dead << f;
  EXPECT_THAT(dead.str(), ::testing::MatchesRegex("<finalize object at 0x[0-9a-f]+; dead>"));
}

TEST_F(FinalizeTest, FuncHoldingTheObjectKeepsItAlive) {
  Strong<Node> n = make<Node>();
  finalize f(
      n, [](const Strong<Node>&) {}, n);  // Python: "never dies"
  ref<Node> r(n);
  n.reset();
  EXPECT_TRUE(r());
  EXPECT_TRUE(f.detach());  // releases the held reference
  EXPECT_FALSE(r());
}

// func and its arguments are stored by value: move-only ones are accepted
// (issue 12), as rvalues. func receives them as lvalues when it can (a
// const reference), else as rvalues (a by-value std::unique_ptr).
TEST_F(FinalizeTest, AcceptsMoveOnlyFuncsAndArguments) {
  Strong<Node> n = make<Node>();
  int got = 0;
  auto res = std::make_unique<int>(1);
  finalize by_value(
      n, [&got](std::unique_ptr<int> p) { got += *p; }, std::move(res));
  finalize move_only_func(n, [&got, p = std::make_unique<int>(10)] { got += *p; });
  finalize by_ref(
      n, [&got](const std::unique_ptr<int>& p) { got += *p; }, std::make_unique<int>(100));
  EXPECT_EQ(getweakrefcount(n), 3U);
  n.reset();
  EXPECT_EQ(got, 111);
}

TEST_F(FinalizeTest, ClosesAnOfstreamItOwns) {
  const std::string path = ::testing::TempDir() + "weakref_finalize_ofstream.txt";
  Strong<Node> n = make<Node>();
  finalize f(
      n, [](std::ofstream& out) { out << "closed by its finalizer\n"; }, std::ofstream(path));
  n.reset();  // the finalizer ran, then destroyed (closed) the stream
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "closed by its finalizer");
  std::remove(path.c_str());
}

// peek() leaves func in place: a move-only one cannot be copied, so its func
// is empty. detach() hands over func itself.
TEST_F(FinalizeTest, PeekOfAMoveOnlyFuncIsEmptyDetachHandsItOver) {
  Strong<Node> n = make<Node>("A");
  int calls = 0;
  finalize f(n, [&calls, p = std::make_unique<int>(5)] { calls += *p; });
  std::optional<finalize::info> info = f.peek();
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->object == n);
  EXPECT_FALSE(info->func);
  EXPECT_THROW(info->func(), std::bad_function_call);
  EXPECT_TRUE(f.alive());
  info.reset();
  std::optional<finalize::info> detached = f.detach();
  ASSERT_TRUE(detached);
  EXPECT_TRUE(detached->func);
  EXPECT_FALSE(f.alive());
  EXPECT_EQ(getweakrefcount(n), 0U);
  n.reset();
  detached->object.reset();
  EXPECT_EQ(calls, 0);
  detached->func();
  EXPECT_EQ(calls, 5);
  finalize::function moved = std::move(detached->func);
  EXPECT_FALSE(detached->func);
  moved();
  EXPECT_EQ(calls, 10);
}

// Python's finalize(obj, None) fails only when called; so does a null func.
TEST_F(FinalizeTest, NullFuncFailsWhenCalled) {
  UnraisableCapture capture;
  Strong<Node> n = make<Node>();
  finalize f(n, static_cast<void (*)(int)>(nullptr), 1);
  finalize g(n, std::function<void()>());
  EXPECT_TRUE(f.alive());
  EXPECT_THROW(f(), std::bad_function_call);
  n.reset();
  ASSERT_EQ(capture.messages.size(), 1U);
  EXPECT_THAT(capture.messages[0], ::testing::HasSubstr("bad_function_call"));
}

// What func and its arguments hold is released as soon as it has run.
TEST_F(FinalizeTest, ArgumentsAreReleasedOnceItHasRun) {
  Strong<Node> n = make<Node>();
  Strong<Node> kept = make<Node>();
  ref<Node> watch(kept);
  finalize f(
      n, [](const Strong<Node>&) {}, kept);
  kept.reset();
  EXPECT_TRUE(watch());
  n.reset();
  EXPECT_FALSE(watch());
}

// exitfunc() ends finalization for the whole process, so it is tested in a
// death test (a child process) to keep the other tests' finalizers working.
TEST(FinalizeExitTest, ExitFuncRunsAtexitFinalizersNewestFirstThenNothing) {
  EXPECT_EXIT(
      {
        std::string order;
        auto a = make<Node>("A");
        auto b = make<Node>("B");
        auto c = make<Node>("C");
        finalize f1(a, [&] { order += "1"; });
        finalize f2(b, [&] { order += "2"; });
        finalize f3(c, [&] { order += "3"; });
        finalize f4(a, [&] { order += "4"; });
        f3.atexit(false);
        f2.detach();
        finalize::exitfunc();
        a.reset();
        b.reset();
        c.reset();  // f3 does not run: finalization has ended
        finalize late(make<Node>(), [&] { order += "L"; });
        std::fprintf(stderr, "order=%s", order.c_str());
        std::_Exit(order == "41" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "order=41");
}

TEST(FinalizeExitTest, ExitFinalizerCreatingFinalizersAndRaising) {
  EXPECT_EXIT(
      {
        std::string order;
        auto a = make<Node>("A");
        auto b = make<Node>("B");
        finalize f1(a, [&] { order += "1"; });
        finalize f2(a, [&] {
          order += "2";
          finalize(b, [&] { order += "n"; });  // created during exit: also run
          throw std::runtime_error("at exit");
        });
        finalize::exitfunc();
        std::fprintf(stderr, "order=%s", order.c_str());
        std::_Exit(order == "2n1" ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "at exit(.|\n)*order=2n1");
}

// The exit step allocates nothing (issue 13): with every allocation
// failing, each of 300 finalizers still runs, called directly...
TEST(FinalizeExitTest, ExitFuncRunsEveryFinalizerWhenAllocationFails) {
  EXPECT_EXIT(
      {
        int ran = 0;
        std::vector<Strong<Plain>> objs;
        std::vector<finalize> fins;
        for (int i = 0; i < 300; ++i) {
          objs.push_back(make<Plain>(i));
          fins.emplace_back(objs.back(), [&ran] { ++ran; });
        }
        g_fail_new = true;
        finalize::exitfunc();
        g_fail_new = false;
        std::fprintf(stderr, "ran=%d", ran);
        std::_Exit(ran == 300 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "ran=300");
}

// ... and at exit (std::atexit), where an exception would end the process.
TEST(FinalizeExitTest, AtexitStepRunsEveryFinalizerWhenAllocationFails) {
  EXPECT_EXIT(
      {
        static int ran = 0;
        static std::vector<Strong<Plain>> objs;
        for (int i = 0; i < 300; ++i) {
          objs.push_back(make<Plain>(i));
          finalize(objs.back(), [] {
            if (++ran < 300) return;
            std::fprintf(stderr, "ran=%d", ran);  // the oldest runs last
            std::_Exit(0);
          });
        }
        g_fail_new = true;
        std::exit(3);
      },
      ::testing::ExitedWithCode(0), "ran=300");
}

}  // namespace
}  // namespace weakref::testing
