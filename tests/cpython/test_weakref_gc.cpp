// Ports of the collector-related tests of CPython 3.11's
// Lib/test/test_weakref.py that are not in ReferencesTestCase (whose gc
// tests -- test_callback_in_cycle and its variants, test_callbacks_on_callback,
// test_gc_during_ref_creation, ... -- are in test_weakref_references.cpp):
// MappingTestCase's tests of weak dictionaries whose entries are cyclic
// garbage, collected while the dictionary is being used. mapping_gc.md lists
// them with the rest.
//
// Translation rules:
//  * RefCycle is a traced self-cycle: it only goes at a collection.
//  * Python allocates tracked objects (a generator for dct.items(), a tuple
//    per next()) at each step, any of which may trigger a collection; the
//    ports allocate a traced temporary at the same points.
//  * collect_in_thread(): with a heap per thread (docs/python-mapping.md,
//    difference 11) a collection on another thread never collects this
//    thread's objects, so the ports collect on this thread, at each of the
//    points where the other thread's collection could land.
#include <array>
#include <cstddef>
#include <optional>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

struct Counted {
  Counted() noexcept { ++g_live; }
  Counted(const Counted&) noexcept { ++g_live; }
  Counted& operator=(const Counted&) noexcept = default;
  ~Counted() { --g_live; }
};

struct RefCycle : Counted {
  Strong<RefCycle> cycle;
  void trace(gc::Visitor& v) { v(cycle); }
};
Strong<RefCycle> make_refcycle() {
  Strong<RefCycle> r = make<RefCycle>();
  r->cycle = r;  // self.cycle = self
  return r;
}

// A tracked temporary, as Python's generator or tuple objects.
struct Temporary {
  void trace(gc::Visitor&) {}
};
void allocate_temporary() { (void)make<Temporary>(); }

class MappingTestCase : public Test {
 protected:
  void SetUp() override {
    gc::disable();
    thresholds_ = gc::get_threshold();
    Test::SetUp();
  }
  void TearDown() override {
    gc::disable();
    gc::set_threshold(thresholds_[0], thresholds_[1], thresholds_[2]);
    Test::TearDown();
    gc::enable();
  }

  template <class Dict, class Cons>
  void check_len_cycles(Cons cons) {
    constexpr std::size_t N = 20;
    std::vector<Strong<RefCycle>> items;
    for (std::size_t i = 0; i < N; ++i) items.push_back(make_refcycle());
    std::vector<decltype(cons(items[0]))> pairs;
    for (const auto& o : items) pairs.push_back(cons(o));
    Dict dct(pairs);
    pairs.clear();
    // Keep an iterator alive
    std::optional it(dct.items().begin());
    items.clear();
    gc::collect();
    std::size_t n1 = dct.size();
    it.reset();
    gc::collect();
    std::size_t n2 = dct.size();
    // one item may be kept alive inside the iterator (Python: n1 in (0, 1)):
    // here exactly one, the current entry, whose object the iterator holds.
    EXPECT_EQ(n1, 1U);
    EXPECT_EQ(n2, 0U);
  }

  // Extended sanity checks for len() in the face of cyclic collection.
  template <class Dict, class Cons>
  void check_len_race(Cons cons) {
    gc::enable();
    bool some_collected = false;
    for (long th = 1; th < 100; ++th) {
      constexpr std::size_t N = 20;
      gc::collect(0);
      gc::set_threshold(th, th, th);
      std::vector<Strong<RefCycle>> items;
      for (std::size_t i = 0; i < N; ++i) items.push_back(make_refcycle());
      std::vector<decltype(cons(items[0]))> pairs;
      for (const auto& o : items) pairs.push_back(cons(o));
      Dict dct(pairs);
      pairs.clear();
      items.clear();
      // All items will be collected at next garbage collection pass
      allocate_temporary();  // it = dct.items()
      std::optional it(dct.items().begin());
      allocate_temporary();  // next(it)
      std::size_t n1 = dct.size();
      it.reset();
      allocate_temporary();
      std::size_t n2 = dct.size();
      EXPECT_LE(n1, N);
      EXPECT_LE(n2, n1);
      if (n2 < N) some_collected = true;
    }
    gc::disable();
    EXPECT_TRUE(some_collected);  // collections did land in the middle
  }

 private:
  std::array<long, 3> thresholds_{};
};

using WKD = WeakKeyDictionary<RefCycle, int>;
using WVD = WeakValueDictionary<int, RefCycle>;

TEST_F(MappingTestCase, test_weak_keyed_len_cycles) {
  check_len_cycles<WKD>([](const Strong<RefCycle>& k) { return std::pair{k, 1}; });
}

TEST_F(MappingTestCase, test_weak_valued_len_cycles) {
  check_len_cycles<WVD>([](const Strong<RefCycle>& k) { return std::pair{1, k}; });
}

TEST_F(MappingTestCase, test_weak_keyed_len_race) {
  check_len_race<WKD>([](const Strong<RefCycle>& k) { return std::pair{k, 1}; });
}

TEST_F(MappingTestCase, test_weak_valued_len_race) {
  check_len_race<WVD>([](const Strong<RefCycle>& k) { return std::pair{1, k}; });
}

// collect_in_thread's collections: at point 0, point 1, both or neither of
// an iteration, in turn.
constexpr int kIterations = 3000;
void collect_if(int i, int point) {
  if ((i % 4) & (1 << point)) gc::collect();
}

TEST_F(MappingTestCase, test_threaded_weak_valued_setdefault) {
  WVD d;
  for (int i = 0; i < kIterations; ++i) {
    Strong<RefCycle> value = make_refcycle();
    collect_if(i, 0);  // the previous value dies before setdefault
    Strong<RefCycle> x = d.setdefault(10, value);
    value.reset();
    EXPECT_TRUE(x);  // we never put None in there!
    x.reset();
    collect_if(i, 1);  // the value just set dies
  }
}

TEST_F(MappingTestCase, test_threaded_weak_valued_pop) {
  WVD d;
  Strong<RefCycle> ten = make<RefCycle>();  // pop's default (Python: 10)
  for (int i = 0; i < kIterations; ++i) {
    d.set(10, make_refcycle());
    collect_if(i, 0);  // the value dies before pop
    Strong<RefCycle> x = d.pop(10, ten);
    EXPECT_TRUE(x);  // we never put None in there!
    collect_if(i, 1);
  }
}

TEST_F(MappingTestCase, test_threaded_weak_valued_consistency) {
  // Issue #28427: old keys should not remove new values from
  // WeakValueDictionary when collecting from another thread.
  WVD d;
  for (int i = 0; i < kIterations; ++i) {
    Strong<RefCycle> o = make_refcycle();
    collect_if(i, 0);  // the previous value dies before the assignment
    d.set(10, o);
    collect_if(i, 1);  // ... or after it
    // o is still alive, so the dict can't be empty
    EXPECT_EQ(d.size(), 1U);
    o = nullptr;  // lose ref
  }
}

}  // namespace
}  // namespace weakref::testing
