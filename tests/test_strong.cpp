// weakref::Strong<T>, make<T>(), self(): the object model.
#include <cstdlib>
#include <memory>
#include <new>
#include <unordered_set>

#include "support.hpp"

// Records the blocks given back to the allocator, to prove that an object's
// memory is freed while weak references to it live on. The replacements are
// never inlined: inlined into a caller, g++ -O2 sees free() applied to what
// ::operator new returned, not knowing that this operator new is malloc(),
// and warns (-Wmismatched-new-delete).
namespace {
std::atomic<const void*> g_last_freed{nullptr};
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  g_last_freed.store(p, std::memory_order_relaxed);
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  g_last_freed.store(p, std::memory_order_relaxed);
  std::free(p);
}
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

namespace weakref::testing {
namespace {

struct Base {
  virtual ~Base() = default;
  int base_value = 1;
};
struct Other {
  virtual ~Other() = default;
  int other_value = 2;
};
struct Derived : Base, Other {
  int derived_value = 3;
  Strong<Derived> me() { return self(this); }
  Strong<Other> other_self() { return self(static_cast<Other*>(this)); }
};

struct Throws {
  explicit Throws(bool fail) {
    if (fail) throw std::runtime_error("ctor failed");
    ++g_live;
  }
  ~Throws() { --g_live; }
};

struct alignas(64) Aligned {
  char bytes[64];
};

using StrongTest = Test;

TEST_F(StrongTest, MakeGivesOneStrongReference) {
  Strong<Plain> p = make<Plain>(42);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->value, 42);
  EXPECT_EQ((*p).value, 42);
  EXPECT_EQ(p.get()->value, 42);
  EXPECT_EQ(p.use_count(), 1);
}

TEST_F(StrongTest, NullState) {
  Strong<Plain> p;
  EXPECT_FALSE(p);
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_EQ(p.use_count(), 0);
  EXPECT_TRUE(p == nullptr);
  Strong<Plain> q = nullptr;
  EXPECT_TRUE(p == q);
}

TEST_F(StrongTest, CopyAndMoveCount) {
  Strong<Plain> a = make<Plain>();
  Strong<Plain> b = a;
  EXPECT_EQ(a.use_count(), 2);
  Strong<Plain> c = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move): moved-from is null
  EXPECT_EQ(a.use_count(), 2);
  c.reset();
  EXPECT_EQ(a.use_count(), 1);
  Strong<Plain> d;
  d = a;
  EXPECT_EQ(a.use_count(), 2);
  d = std::move(a);
  EXPECT_EQ(d.use_count(), 1);
}

TEST_F(StrongTest, ObjectDiesWithLastReference) {
  long before = g_live;
  Strong<Plain> a = make<Plain>();
  Strong<Plain> b = a;
  EXPECT_EQ(g_live, before + 1);
  a.reset();
  EXPECT_EQ(g_live, before + 1);
  b.reset();
  EXPECT_EQ(g_live, before);
}

TEST_F(StrongTest, IdentityEqualityAndHash) {
  Strong<Plain> a = make<Plain>();
  Strong<Plain> a2 = a;
  Strong<Plain> b = make<Plain>();
  EXPECT_TRUE(a == a2);
  EXPECT_FALSE(a == b);
  EXPECT_EQ(std::hash<Strong<Plain>>{}(a), std::hash<Strong<Plain>>{}(a2));
  std::unordered_set<Strong<Plain>> set{a, a2, b};
  EXPECT_EQ(set.size(), 2U);
  EXPECT_NE(a <=> b, std::strong_ordering::equal);
}

TEST_F(StrongTest, ImplicitUpcastKeepsIdentity) {
  Strong<Derived> d = make<Derived>();
  Strong<Base> b = d;
  Strong<Other> o = d;
  EXPECT_EQ(d.use_count(), 3);
  EXPECT_TRUE(b == d);
  EXPECT_TRUE(o == d);  // same object even though the pointers differ
  EXPECT_NE(static_cast<void*>(o.get()), static_cast<void*>(d.get()));
  EXPECT_EQ(o->other_value, 2);
  Strong<Derived> back = dynamic_pointer_cast<Derived>(o);
  ASSERT_TRUE(back);
  EXPECT_EQ(back.get(), d.get());
  EXPECT_FALSE(dynamic_pointer_cast<Derived>(Strong<Base>(make<Base>())));
  Strong<Derived> s = static_pointer_cast<Derived>(b);
  EXPECT_EQ(s.get(), d.get());
  Strong<const Derived> cd = d;
  EXPECT_EQ(const_pointer_cast<Derived>(cd).get(), d.get());
}

TEST_F(StrongTest, SelfFromMemberFunction) {
  Strong<Derived> d = make<Derived>();
  Strong<Derived> me = d->me();
  EXPECT_TRUE(me == d);
  EXPECT_EQ(d.use_count(), 2);
  // From a base subobject at a non-zero offset (polymorphic: found).
  Strong<Other> o = d->other_self();
  EXPECT_TRUE(o == d);
  EXPECT_EQ(d.use_count(), 3);
  Plain* raw = nullptr;
  EXPECT_FALSE(self(raw));
}

TEST_F(StrongTest, SelfWorksDuringConstructionAndIsNullInTheDestructor) {
  struct Probe {
    bool in_ctor = false;
    long count_in_ctor = 0;
    bool* in_dtor;
    explicit Probe(bool* d) : in_dtor(d) {
      Strong<Probe> me = self(this);
      in_ctor = static_cast<bool>(me);
      count_in_ctor = me.use_count();  // make's reference and this one
    }
    ~Probe() { *in_dtor = static_cast<bool>(self(this)); }
  };
  bool dtor_got_self = true;
  Strong<Probe> p = make<Probe>(&dtor_got_self);
  EXPECT_TRUE(p->in_ctor);
  EXPECT_EQ(p->count_in_ctor, 2);
  EXPECT_EQ(p.use_count(), 1);
  p.reset();
  EXPECT_FALSE(dtor_got_self);
}

// Python's most common finalize idiom: the object registers its own
// finalizer in __init__ (issue #12, item 5).
TEST_F(StrongTest, ConstructorRegistersItsOwnFinalizerAndWeakrefs) {
  static std::vector<std::string>* log = nullptr;
  std::vector<std::string> events;
  log = &events;
  struct Resource {
    int handle;
    finalize finalizer;
    ref<Resource> me;
    explicit Resource(int h)
        : handle(h),
          finalizer(
              self(this), [](int x) { log->push_back("closed " + std::to_string(x)); }, h),
          me(self(this), [] { log->push_back("callback"); }) {}
    ~Resource() { log->push_back("~Resource"); }
  };
  Strong<Resource> r = make<Resource>(7);
  EXPECT_EQ(r.use_count(), 1);
  EXPECT_TRUE(r->finalizer.alive());
  EXPECT_TRUE(r->me() == r);
  EXPECT_EQ(getweakrefcount(r), 2);
  r.reset();
  EXPECT_THAT(events, ::testing::ElementsAre("callback", "closed 7", "~Resource"));
  log = nullptr;
}

// A constructor that throws after registering finalizers and weakrefs: as
// in CPython (where the object is freed when __init__ raises), they all
// run, newest first; tp_finalize and ~T do not (no T was made). ASan checks
// that nothing leaks and nothing is freed twice.
TEST_F(StrongTest, ConstructorThrowingAfterRegisteringRunsCallbacksNotTheDestructor) {
  static std::vector<std::string>* log = nullptr;
  static ref<void>* outside = nullptr;
  std::vector<std::string> events;
  log = &events;
  ref<void> kept;
  outside = &kept;
  struct Fails {
    std::string member = "a member";
    finalize fin;
    explicit Fails(bool traced_member) : fin(self(this), [] { log->push_back("finalizer"); }) {
      (void)traced_member;
      Strong<Fails> me = self(this);
      *outside = ref<void>(me, [](ref<void> dead) {
        log->push_back(dead() ? "callback: alive" : "callback: dead");
      });
      throw std::runtime_error("ctor failed");
    }
    void tp_finalize() { log->push_back("tp_finalize"); }
    ~Fails() { log->push_back("~Fails"); }
  };
  try {
    make<Fails>(false);
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    events.push_back(std::string("caught: ") + e.what());
  }
  EXPECT_THAT(events, ::testing::ElementsAre("callback: dead", "finalizer", "caught: ctor failed"));
  EXPECT_TRUE(kept.expired());
  log = nullptr;
  outside = nullptr;
}

// A Strong made by self(this) that escapes a throwing constructor keeps the
// block (still weakly referenceable) until it is released; that release
// runs the callbacks and finalizers and frees it, never ~T nor tp_finalize.
TEST_F(StrongTest, StrongEscapingAThrowingConstructorKeepsTheBlockUntilReleased) {
  static std::vector<std::string>* log = nullptr;
  static Strong<void>* escaped = nullptr;
  static ref<void>* outside = nullptr;
  std::vector<std::string> events;
  log = &events;
  Strong<void> holder;
  escaped = &holder;
  ref<void> kept;
  outside = &kept;
  struct Escapes {
    finalize fin;  // the handle dies with the exception, the finalizer lives on
    Escapes() : fin(self(this), [] { log->push_back("finalizer"); }) {
      *outside = ref<void>(self(this), [] { log->push_back("callback"); });
      *escaped = self(this);
      throw std::runtime_error("ctor failed");
    }
    void tp_finalize() { log->push_back("tp_finalize"); }
    ~Escapes() { log->push_back("~Escapes"); }
  };
  EXPECT_THROW(make<Escapes>(), std::runtime_error);
  EXPECT_TRUE(events.empty());
  ASSERT_TRUE(holder);
  EXPECT_EQ(holder.use_count(), 1);
  EXPECT_TRUE(kept() == holder);
  EXPECT_THAT(type_name(holder), ::testing::HasSubstr("Unconstructed<"));
  EXPECT_FALSE(exact_pointer_cast<Escapes>(holder));  // there is no Escapes in it
  EXPECT_FALSE(dynamic_pointer_cast<Escapes>(holder));
  holder.reset();
  EXPECT_THAT(events, ::testing::ElementsAre("callback", "finalizer"));
  EXPECT_TRUE(kept.expired());
  log = nullptr;
  escaped = nullptr;
  outside = nullptr;
}

// Traced objects whose constructor took references to themselves: the heap
// index is set without losing them, and a self-cycle made in the
// constructor is collected.
TEST_F(StrongTest, TracedObjectReferencingItselfFromItsConstructor) {
  struct Loop {
    Strong<Loop> self_ref;
    ref<Loop> weak_self;
    explicit Loop(bool cycle) : weak_self(self(this)) {
      if (cycle) self_ref = self(this);
      ++g_live;
    }
    ~Loop() { --g_live; }
    void trace(gc::Visitor& v) { v(self_ref, weak_self); }
  };
  const long before = g_live;
  Strong<Loop> a = make<Loop>(false);
  EXPECT_TRUE(gc::is_tracked(a));
  EXPECT_EQ(a.use_count(), 1);
  EXPECT_TRUE(a->weak_self() == a);
  Strong<Loop> b = make<Loop>(true);
  EXPECT_EQ(b.use_count(), 2);
  ref<Loop> wb(b);
  b.reset();
  EXPECT_FALSE(wb.expired());
  EXPECT_GE(gc::collect(), 1U);
  EXPECT_TRUE(wb.expired());
  a.reset();
  EXPECT_EQ(g_live, before);
}

TEST_F(StrongTest, ConvertsToSharedPtrThatKeepsObjectAlive) {
  long before = g_live;
  std::shared_ptr<Plain> sp;
  {
    Strong<Plain> p = make<Plain>(5);
    sp = p;
    EXPECT_EQ(p.use_count(), 2);
  }
  EXPECT_EQ(g_live, before + 1);
  EXPECT_EQ(sp->value, 5);
  std::shared_ptr<const Plain> csp = sp;
  sp.reset();
  EXPECT_EQ(g_live, before + 1);
  csp.reset();
  EXPECT_EQ(g_live, before);
  EXPECT_FALSE(Strong<Plain>().to_shared());
}

TEST_F(StrongTest, ConstructorExceptionLeaksNothing) {
  long before = g_live;
  EXPECT_THROW(make<Throws>(true), std::runtime_error);
  EXPECT_EQ(g_live, before);
  EXPECT_TRUE(make<Throws>(false));
}

TEST_F(StrongTest, HeaderIsSixteenBytes) {
  // Untraced: header only. Traced: header + collector link (CPython's
  // PyGC_Head is 16 bytes too).
  // Blocks are whole multiples of 16 bytes, so that headers stay aligned.
  auto block = [](std::size_t n) { return (n + 15) / 16 * 16; };
  EXPECT_EQ(sizeof(detail::ObjectHeader), 16U);
  EXPECT_EQ(detail::TypeInfoFor<Plain>::value.block_size, block(sizeof(Plain) + 16));
  EXPECT_EQ(detail::TypeInfoFor<Node>::value.block_size, block(sizeof(Node) + 32));
  EXPECT_EQ(detail::TypeInfoFor<int>::value.block_size, 32U);
  EXPECT_EQ(sizeof(Strong<Plain>), 2 * sizeof(void*));
}

template <std::size_t N>
struct Bytes {
  char b[N] = {};
};
struct alignas(16) Vec16 {
  long double x = 0;  // 16-byte aligned on x86-64
  char tail = 0;
};

template <class... T>
void expect_aligned_objects() {
  std::vector<Strong<void>> keep;
  for (int i = 0; i < 64; ++i) (keep.push_back(make<T>()), ...);
  for (const Strong<void>& p : keep) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p.get()) % 16, 0U);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(detail::StrongAccess::header(p)) % 16, 0U);
  }
}

// The small-block allocator steps its sizes by 8 bytes; objects of every
// size still get 16-aligned headers (and themselves their own alignment).
TEST_F(StrongTest, ObjectsOfEverySizeAreSixteenByteAligned) {
  expect_aligned_objects<Bytes<1>, Bytes<8>, Bytes<20>, Bytes<24>, Bytes<40>, Bytes<56>, Bytes<72>,
                         Bytes<200>, Vec16, Plain, Node>();
}

// Side tables made by weak container entries come from pages of their own,
// never from the pages of the objects of their size (weak lookups then touch
// side tables packed two to a line, not lines shared with objects: see
// src/alloc.cpp, kSideClass). Those made by a ref share one block with it
// (object.hpp, SideTable::block): not the objects' pages either.
TEST_F(StrongTest, SideTablesDoNotShareObjectsPages) {
  if (!detail::pools_enabled()) GTEST_SKIP() << "AddressSanitizer build: blocks use operator new";
  static_assert(sizeof(detail::SideTable) == 32);
  constexpr std::uintptr_t kPage = 64 * 1024;
  auto page = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p) / kPage; };
  std::vector<Strong<Bytes<16>>> objs;  // 32-byte blocks, as side tables
  WeakSet<Bytes<16>> set;
  std::vector<ref<Bytes<16>>> refs;
  std::unordered_set<std::uintptr_t> object_pages, side_pages, ref_side_pages;
  for (int i = 0; i < 4000; ++i) {
    objs.push_back(make<Bytes<16>>());
    if (i % 2)
      set.add(objs.back());
    else
      refs.emplace_back(objs.back());
    detail::ObjectHeader* h = detail::StrongAccess::header(objs.back());
    const detail::HeaderWord w{h->word.load()};
    ASSERT_TRUE(w.has_side());
    object_pages.insert(page(h));
    (i % 2 ? side_pages : ref_side_pages).insert(page(w.side()));
  }
  for (std::uintptr_t p : side_pages) EXPECT_EQ(object_pages.count(p), 0U);
  for (std::uintptr_t p : ref_side_pages) EXPECT_EQ(object_pages.count(p), 0U);
  EXPECT_LE(side_pages.size(), 2U);  // 2000 side tables: about one page
}

TEST_F(StrongTest, OverAlignedObjects) {
  std::vector<Strong<Aligned>> v;
  for (int i = 0; i < 16; ++i) v.push_back(make<Aligned>());
  for (auto& a : v) EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.get()) % 64, 0U);
  ref<Aligned> r(v[0]);
  EXPECT_TRUE(r() == v[0]);
}

struct Big {
  char bytes[1000];  // above the small-block allocator's sizes: operator new
};

TEST_F(StrongTest, MemoryFreedWhileWeakReferencesLive) {
  Strong<Big> p = make<Big>();
  ref<Big> r(p);
  proxy<Big> px(p);
  const void* block =
      reinterpret_cast<const char*>(p.get()) - detail::TypeInfoFor<Big>::value.offset;
  p.reset();
  EXPECT_EQ(g_last_freed.load(), block);  // the object's block is gone...
  EXPECT_FALSE(r());                      // ...while the weakrefs live on
  EXPECT_TRUE(r.expired());
}

TEST_F(StrongTest, SmallBlocksAreReusedWhileWeakReferencesLive) {
  // Small objects come from the library's pages: their blocks are reused
  // by the next objects even though weakrefs to the dead ones remain.
  if (!detail::pools_enabled()) GTEST_SKIP() << "AddressSanitizer build: blocks use operator new";
  std::vector<ref<Plain>> refs;
  std::unordered_set<const void*> first;
  {
    std::vector<Strong<Plain>> objs;
    for (int i = 0; i < 1000; ++i) {
      objs.push_back(make<Plain>(i));
      refs.emplace_back(objs.back());
      first.insert(objs.back().get());
    }
  }
  int reused = 0;
  std::vector<Strong<Plain>> again;
  for (int i = 0; i < 4000; ++i) {  // a page holds ~1300 such blocks
    again.push_back(make<Plain>(i));
    reused += first.count(again.back().get()) ? 1 : 0;
  }
  EXPECT_GE(reused, 900);
  for (auto& r : refs) EXPECT_FALSE(r());
}

// A Strong made by a weak lock keeps its count on the side table (its
// release does not read the object's header), yet it is the same kind of
// reference as any other: same identity, hash, order and count.
TEST_F(StrongTest, StrongFromAWeakLockIsAnOrdinaryReference) {
  Strong<Derived> p = make<Derived>();
  ref<Derived> r(p);
  Strong<Derived> q = r();
  ASSERT_TRUE(q);
  EXPECT_TRUE(q == p);
  EXPECT_TRUE(p == q);
  EXPECT_FALSE(q != p);
  EXPECT_EQ(q <=> p, std::strong_ordering::equal);
  EXPECT_EQ(std::hash<Strong<Derived>>{}(q), std::hash<Strong<Derived>>{}(p));
  EXPECT_EQ(q.use_count(), 2);
  {
    Strong<Derived> c = q;  // a copy counts on the same word
    EXPECT_EQ(p.use_count(), 3);
    Strong<Other> up = c;  // upcast to a base at a nonzero offset
    EXPECT_TRUE(up == p);
    EXPECT_EQ(up->other_value, 2);
    Strong<void> any = q;
    EXPECT_TRUE(exact_pointer_cast<Derived>(any) == p);
    EXPECT_STREQ(type_name(any), type_name(p));
  }
  EXPECT_EQ(p.use_count(), 2);
  std::unordered_set<Strong<Derived>> set{p};
  EXPECT_EQ(set.count(q), 1U);
  Strong<Derived> other = make<Derived>();
  EXPECT_FALSE(q == other);
  EXPECT_EQ(q < other, p < other);
  EXPECT_EQ(proxy<Derived>(p).lock(), p);
}

TEST_F(StrongTest, LastReleaseThroughAWeakLockedStrongRunsTheDeath) {
  long before = g_live;
  std::vector<std::string> log;
  Strong<Plain> p = make<Plain>(7);
  ref<Plain> r(p, [&log](const ref<Plain>&) { log.push_back("callback"); });
  ref<Plain> plain(p);
  Strong<Plain> q = r();
  p.reset();
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(q.use_count(), 1);
  EXPECT_EQ(plain()->value, 7);
  q.reset();
  EXPECT_EQ(log, std::vector<std::string>{"callback"});
  EXPECT_EQ(g_live, before);
  EXPECT_FALSE(plain());
  EXPECT_FALSE(r());
}

TEST_F(StrongTest, ChainOfWeakLockedStrongsReleasesWithoutRecursion) {
  long before = g_live;
  std::vector<ref<Plain>> refs;
  Strong<Plain> head = make<Plain>(0);
  Plain* tail = head.get();
  for (int i = 1; i < 1'000'000; ++i) {
    Strong<Plain> n = make<Plain>(i);
    refs.emplace_back(n);
    tail->next = refs.back()();  // each link counts on the side table
    tail = tail->next.get();
  }
  EXPECT_EQ(g_live, before + 1'000'000);
  head.reset();
  EXPECT_EQ(g_live, before);
  EXPECT_FALSE(refs.back()());
}

TEST_F(StrongTest, TenMillionChainReleasesWithoutRecursion) {
  long before = g_live;
  Strong<Plain> head = make<Plain>(0);
  Plain* tail = head.get();
  for (int i = 1; i < 10'000'000; ++i) {
    tail->next = make<Plain>(i);
    tail = tail->next.get();
  }
  EXPECT_EQ(g_live, before + 10'000'000);
  head.reset();
  EXPECT_EQ(g_live, before);
}

struct Fan {
  std::vector<Strong<Plain>> kids;
  Strong<Fan> next;
};

// Past 50 nested deaths, deaths wait on the thread's stack and run last
// queued, first run. 100 waiting deaths overflow the stack's inline slots
// into the memory it grows into; each leaf has a weakref (its side table),
// and its callback records the order.
TEST_F(StrongTest, DeathsQueuedPastTheLimitRunLastQueuedFirst) {
  long before = g_live;
  std::vector<int> order;
  std::vector<ref<Plain>> refs;
  Strong<Fan> head = make<Fan>();
  Fan* tail = head.get();
  for (int i = 0; i < 49; ++i) {  // the last one dies 50 deep
    tail->next = make<Fan>();
    tail = tail->next.get();
  }
  for (int i = 0; i < 100; ++i) {
    tail->kids.push_back(make<Plain>(i));
    refs.emplace_back(tail->kids.back(), [&order, i](const ref<Plain>&) { order.push_back(i); });
  }
  head.reset();
  std::vector<int> expected(100);
  for (int i = 0; i < 100; ++i) expected[static_cast<std::size_t>(i)] = 99 - i;
  EXPECT_EQ(order, expected);
  EXPECT_EQ(g_live, before);
}

TEST_F(StrongTest, DeepTracedChainWithWeakrefsReleases) {
  // Same through traced objects that have side tables and callbacks.
  long before = g_live;
  int calls = 0;
  std::vector<ref<Node>> refs;
  Strong<Node> head = make<Node>("0");
  Node* tail = head.get();
  for (int i = 1; i < 200'000; ++i) {
    tail->a = make<Node>(std::to_string(i));
    if (i % 1000 == 0) refs.emplace_back(tail->a, [&calls](const ref<Node>&) { ++calls; });
    tail = tail->a.get();
  }
  head.reset();
  EXPECT_EQ(g_live, before);
  EXPECT_EQ(calls, 199);
}

TEST_F(StrongTest, StreamsLikePythonRepr) {
  Strong<Plain> p = make<Plain>();
  std::ostringstream os;
  os << p;
  EXPECT_THAT(os.str(), ::testing::MatchesRegex("<weakref::testing::Plain object at 0x[0-9a-f]+>"));
  std::ostringstream none;
  none << Strong<Plain>();
  EXPECT_EQ(none.str(), "None");
  EXPECT_STREQ(type_name(p), "weakref::testing::Plain");
}

// Strong prints with T's own operator<< when T has one (issue #12, item 8),
// as the weak containers print their elements.
struct Named {
  std::string name;
  friend std::ostream& operator<<(std::ostream& os, const Named& n) {
    return os << "Named(" << n.name << ")";
  }
};
TEST_F(StrongTest, StreamsWithTheObjectsOwnOperator) {
  Strong<Named> n = make<Named>("x");
  std::ostringstream os;
  os << n;
  EXPECT_EQ(os.str(), "Named(x)");
  std::ostringstream none;
  none << Strong<Named>();
  EXPECT_EQ(none.str(), "None");
  std::ostringstream erased;  // no static type: the default repr
  erased << Strong<void>(n);
  EXPECT_THAT(erased.str(),
              ::testing::MatchesRegex("<weakref::testing::.*Named object at 0x[0-9a-f]+>"));
  std::ostringstream number;
  number << make<int>(5);
  EXPECT_EQ(number.str(), "5");
  WeakSet<Named> set{n};
  std::ostringstream in_set;
  in_set << set;
  EXPECT_EQ(in_set.str(), "WeakSet({Named(x)})");
}

TEST_F(StrongTest, StrongVoidAndExactCast) {
  Strong<Plain> p = make<Plain>(9);
  Strong<void> v = p;
  EXPECT_TRUE(v == p);
  EXPECT_EQ(exact_pointer_cast<Plain>(v)->value, 9);
  EXPECT_FALSE(exact_pointer_cast<Node>(v));
}

// The order docs/threads.md and strong.hpp state (issue #12, item 4; CPython:
// PEP 442's tp_finalize, then the weakref callbacks newest first, finalizers
// among them, then the destructor).
TEST_F(StrongTest, DeathRunsTpFinalizeThenCallbacksNewestFirstThenTheDestructor) {
  static std::vector<std::string>* log = nullptr;
  std::vector<std::string> events;
  log = &events;
  struct Dying {
    void tp_finalize() { log->push_back("tp_finalize"); }
    ~Dying() { log->push_back("~T"); }
  };
  Strong<Dying> d = make<Dying>();
  ref<Dying> r1(d, [] { log->push_back("callback 1"); });
  finalize f(d, [] { log->push_back("finalizer"); });
  ref<Dying> r2(d, [] { log->push_back("callback 2"); });
  d.reset();
  EXPECT_THAT(events,
              ::testing::ElementsAre("tp_finalize", "callback 2", "finalizer", "callback 1", "~T"));
  log = nullptr;
}

// make<T>(args...) builds aggregates with braces when T has no matching
// constructor (clang 14 has no parenthesized aggregate initialization).
struct PlainPoint {
  int x;
  int y;
  std::string name;
};
TEST_F(StrongTest, MakeBuildsAggregates) {
  Strong<PlainPoint> p = make<PlainPoint>(1, 2, "p");
  EXPECT_EQ(p->x, 1);
  EXPECT_EQ(p->y, 2);
  EXPECT_EQ(p->name, "p");
  Strong<PlainPoint> partial = make<PlainPoint>(5);  // no -Wmissing-field-initializers
  EXPECT_EQ(partial->x, 5);
  EXPECT_EQ(partial->y, 0);
  EXPECT_TRUE(partial->name.empty());
  Strong<PlainPoint> zero = make<PlainPoint>();
  EXPECT_EQ(zero->x, 0);
  EXPECT_TRUE(zero->name.empty());
  Strong<std::vector<int>> v = make<std::vector<int>>(3, 7);  // a constructor wins
  EXPECT_EQ(v->size(), 3U);
}

}  // namespace
}  // namespace weakref::testing
