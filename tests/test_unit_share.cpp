// Container entry weakrefs share their referent's unit of SideTable::weak
// while they are linked (include/weakref/detail/weak_object.hpp, "Units of
// SideTable::weak"): inserting or erasing takes no unit, and every way an
// entry weakref leaves its list otherwise gives it one of its own -- the
// death (one entry: the object's unit; several: one each), the collector
// (a garbage referent, or a garbage container whose referents live on).
// White box where the count itself is the subject; the rest checks what
// the user sees (sizes, getweakrefcount, getweakrefs) through deaths that
// follow each path, with the sanitizer presets catching a side table freed
// too early.
#include <cstdint>
#include <memory>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

using UnitShareTest = ManualCollectionTest;

detail::SideTable* side_of(const Strong<Node>& x) {
  return detail::side_if_any(detail::StrongAccess::header(x));
}
std::uint32_t units(const detail::SideTable* s) { return s->weak.load(); }

TEST_F(UnitShareTest, LinkedEntriesTakeNoUnitOtherWeakrefsDo) {
  Strong<Node> x = make<Node>("x");
  WeakSet<Node> set;
  WeakKeyDictionary<Node, int> keys;
  WeakValueDictionary<int, Node> values;
  set.add(x);  // the first weakref makes the side table
  detail::SideTable* s = side_of(x);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(units(s), 1U);  // the object's, shared
  keys[x] = 1;
  values[1] = x;
  EXPECT_EQ(units(s), 1U);
  EXPECT_EQ(getweakrefcount(x), 3U);
  ref<Node> basic(x);  // the pinned basic ref shares it too
  EXPECT_EQ(units(s), 1U);
  ref<Node> with_callback(x, [](const ref<Node>&) {});
  EXPECT_EQ(units(s), 2U);  // a weakref that can outlive the object has its own
  EXPECT_EQ(getweakrefcount(x), 5U);
  set.discard(x);
  keys.erase(x);
  values.erase(1);
  EXPECT_EQ(units(s), 2U);
  EXPECT_EQ(getweakrefcount(x), 2U);
  // Again, from the tables' spare weakrefs.
  set.add(x);
  values[2] = x;
  EXPECT_EQ(units(s), 2U);
  EXPECT_EQ(getweakrefcount(x), 4U);
  set.clear();
  values.clear();
  with_callback = ref<Node>();
  EXPECT_EQ(units(s), 1U);
  EXPECT_EQ(getweakrefcount(x), 1U);
}

// Several entry weakrefs at one death (the list walk): each cleared one gets
// a unit, the object's goes after ~T (here the basic ref takes it over).
TEST_F(UnitShareTest, ADeathGivesEachClearedEntryWeakrefAUnit) {
  Strong<Node> x = make<Node>("x");
  WeakSet<Node> set{x};
  WeakKeyDictionary<Node, int> keys;
  keys[x] = 7;
  WeakValueDictionary<int, Node> values;
  values[1] = x;
  ref<Node> basic(x);
  std::vector<ref<Node>> held = values.valuerefs();
  detail::SideTable* s = side_of(x);
  ASSERT_EQ(units(s), 1U);
  x.reset();
  // Three cleared entry weakrefs and the cleared basic ref: four units.
  EXPECT_EQ(units(s), 4U);
  EXPECT_EQ(set.size(), 0U);
  EXPECT_EQ(keys.size(), 0U);
  EXPECT_EQ(values.size(), 0U);
  EXPECT_FALSE(basic());
  basic = ref<Node>();
  EXPECT_EQ(units(s), 3U);
  set.clear();  // drains: its weakref becomes a spare, without a unit
  keys.clear();
  values.clear();  // drained; `held` keeps its weakref
  EXPECT_EQ(units(s), 1U);
  ASSERT_EQ(held.size(), 1U);
  EXPECT_FALSE(held[0]());
  EXPECT_TRUE(held[0].is(held[0]));
  held.clear();  // the last unit: the side table goes
}

// The same without a basic ref: the object's unit is dropped after ~T.
TEST_F(UnitShareTest, ADeathWithOnlyEntryWeakrefs) {
  Strong<Node> x = make<Node>("x");
  WeakSet<Node> a{x};
  WeakSet<Node> b{x};
  std::vector<ref<>> held = getweakrefs(x);
  ASSERT_EQ(held.size(), 2U);
  detail::SideTable* s = side_of(x);
  x.reset();
  EXPECT_EQ(units(s), 2U);
  EXPECT_EQ(a.size() + b.size(), 0U);
  a.clear();
  b.clear();
  EXPECT_EQ(units(s), 2U);  // held by `held`
  held.pop_back();
  EXPECT_EQ(units(s), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();
}

// The common death of an object whose one weakref is an entry's: the claim
// is made before ~T runs and queued after it; while ~T runs, the dying
// thread's size() leaves the entry out (a thread-local list of the entry
// deaths in flight), as CPython's len() does once the callback has run.
struct Member {
  WeakSet<Member>* set = nullptr;
  WeakValueDictionary<int, Member>* values = nullptr;
  Strong<Member> replacement;  // put in `values` at key 1 by ~Member
  Strong<Member> held;         // dies inside ~Member
  std::size_t* out = nullptr;
  std::size_t* out_after = nullptr;
  Member() { ++g_live; }
  ~Member() {
    if (set) *out = set->size();
    if (values) {
      *out = values->size();
      if (replacement) (*values)[1] = replacement;  // a non-const call while the death runs
      held.reset();
      if (out_after) *out_after = values->size();
    }
    --g_live;
  }
};

TEST_F(UnitShareTest, OneEntryDeathLeavesSizeInTheDestructorQueuesAfter) {
  WeakSet<Member> set;
  std::size_t seen = 99;
  Strong<Member> m = make<Member>();
  m->set = &set;
  m->out = &seen;
  set.add(m);
  detail::SideTable* s = detail::side_if_any(detail::StrongAccess::header(m));
  EXPECT_EQ(units(s), 1U);
  std::vector<ref<>> held = getweakrefs(m);
  m.reset();
  EXPECT_EQ(seen, 0U);
  EXPECT_EQ(set.size(), 0U);
  EXPECT_EQ(units(s), 1U);  // the entry weakref took the object's over
  ASSERT_EQ(held.size(), 1U);
  EXPECT_FALSE(held[0]());
  set.clear();  // drains; `held` keeps the weakref and its unit
  EXPECT_EQ(units(s), 1U);
  held.clear();
}

TEST_F(UnitShareTest, OneEntryDeathWhoseDestructorSetsItsKeyAgain) {
  WeakValueDictionary<int, Member> values;
  std::size_t seen = 99;
  std::size_t seen_after = 99;
  Strong<Member> next = make<Member>();
  {
    Strong<Member> m = make<Member>();
    m->values = &values;
    m->replacement = next;
    m->out = &seen;
    m->out_after = &seen_after;
    values[1] = m;
  }
  EXPECT_EQ(seen, 0U);
  EXPECT_EQ(seen_after, 1U);  // the new value counts; the old claim is still in flight
  EXPECT_EQ(values.size(), 1U);
  EXPECT_TRUE(values.get(1) == next);
  EXPECT_EQ(getweakrefcount(next), 1U);
  values.clear();
  EXPECT_EQ(getweakrefcount(next), 0U);
}

// Deaths nest: ~T of one value releases another of the same dictionary.
// Both claims are in flight on this thread at once, and size() leaves both
// out; an entry that ~T erases itself is left out once, not twice.
TEST_F(UnitShareTest, NestedEntryDeathsAreAllOutOfSize) {
  WeakValueDictionary<int, Member> values;
  std::size_t outer_seen = 99, outer_after = 99, inner_seen = 99;
  Strong<Member> keep = make<Member>();
  values[0] = keep;
  {
    Strong<Member> outer = make<Member>();
    Strong<Member> inner = make<Member>();
    outer->values = &values;
    outer->out = &outer_seen;
    outer->out_after = &outer_after;
    inner->values = &values;
    inner->out = &inner_seen;
    values[1] = outer;
    values[2] = inner;
    outer->held = std::move(inner);
    EXPECT_EQ(values.size(), 3U);
  }
  EXPECT_EQ(outer_seen, 2U);   // `keep` and `inner`, alive still
  EXPECT_EQ(inner_seen, 1U);   // inside the outer death: both out
  EXPECT_EQ(outer_after, 1U);  // the inner death queued, the outer in flight
  EXPECT_EQ(values.size(), 1U);
  EXPECT_TRUE(values.get(0) == keep);
  EXPECT_FALSE(values.get(1));
  EXPECT_FALSE(values.get(2));
}

struct Eraser {
  WeakValueDictionary<int, Eraser>* values = nullptr;
  std::size_t* out_before = nullptr;
  std::size_t* out_after = nullptr;
  ~Eraser() {
    if (!values) return;
    *out_before = values->size();
    // Its own entry, claimed already: the dictionary takes it out (as
    // absent: erase finds no live value) or leaves it to the drain.
    (void)values->erase(1);
    *out_after = values->size();
  }
};

TEST_F(UnitShareTest, ADestructorThatErasesItsOwnEntryCountsItOutOnce) {
  WeakValueDictionary<int, Eraser> values;
  Strong<Eraser> keep = make<Eraser>();
  std::size_t before = 99, after = 99;
  values[0] = keep;
  {
    Strong<Eraser> e = make<Eraser>();
    e->values = &values;
    e->out_before = &before;
    e->out_after = &after;
    values[1] = e;
  }
  EXPECT_EQ(before, 1U);
  EXPECT_EQ(after, 1U);
  EXPECT_EQ(values.size(), 1U);
}

// The container goes while its entry's referent dies: destroyed by the
// dying object's destructor (the queue is closed when the death would push),
// and before the death (the entry's claim is lost to the owner: the
// weakref, held by a handle, gets a unit of its own).
struct SetOwner {
  std::unique_ptr<WeakSet<SetOwner>> set = std::make_unique<WeakSet<SetOwner>>();
  SetOwner() { ++g_live; }
  ~SetOwner() {
    set.reset();
    --g_live;
  }
};

TEST_F(UnitShareTest, ContainerDestroyedByTheDyingObject) {
  Strong<SetOwner> o = make<SetOwner>();
  o->set->add(o);
  std::vector<ref<>> held = getweakrefs(o);
  o.reset();
  ASSERT_EQ(held.size(), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();
  Strong<SetOwner> p = make<SetOwner>();
  p->set->add(p);
  p.reset();  // the entry weakref's last reference is the death's
}

TEST_F(UnitShareTest, EntryWeakrefHeldPastItsContainerAndItsObject) {
  Strong<Node> x = make<Node>("x");
  detail::SideTable* s;
  std::vector<ref<Node>> held;
  {
    WeakValueDictionary<int, Node> values;
    values[1] = x;
    s = side_of(x);
    held = values.valuerefs();
    EXPECT_EQ(units(s), 1U);
  }
  // Still linked, held by the handle alone: still sharing.
  EXPECT_EQ(getweakrefcount(x), 1U);
  EXPECT_EQ(units(s), 1U);
  x.reset();  // the owner had removed the entry: the claim is lost
  EXPECT_EQ(units(s), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();

  // The other order: the object dies first (a won claim), then the
  // container, then the handle.
  x = make<Node>("y");
  {
    WeakValueDictionary<int, Node> values;
    values[1] = x;
    s = side_of(x);
    held = values.valuerefs();
    x.reset();
    EXPECT_EQ(values.size(), 0U);
    EXPECT_EQ(units(s), 1U);
  }
  EXPECT_EQ(units(s), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();
}

// The quiet death (no lock, no RMW) is for an object whose list is empty or
// its pinned basic ref alone; a linked entry weakref keeps it out, and it is
// back once the entries have left.
TEST_F(UnitShareTest, NoQuietDeathWhileEntriesAreLinked) {
  for (int with_basic = 0; with_basic < 2; ++with_basic) {
    WeakSet<Node> set;
    WeakKeyDictionary<Node, int> keys;
    Strong<Node> x = make<Node>("x");
    Strong<Node> other = make<Node>("other");
    if (with_basic) (void)ref<Node>(x);  // pinned; no handle left
    set.add(x);
    keys[x] = 1;
    set.discard(x);  // one entry left
    x.reset();
    EXPECT_EQ(set.size(), 0U);
    EXPECT_EQ(keys.size(), 0U);
    std::size_t n = 0;
    for (const auto& item : keys) {
      (void)item;
      ++n;
    }
    EXPECT_EQ(n, 0U);
    keys[other] = 2;  // drains the dead entry
    EXPECT_EQ(keys.size(), 1U);
    EXPECT_EQ(getweakrefcount(other), 1U);
  }
}

// White box: an entry weakref's unlinker gives up no unit, so only `head`
// can tell the quiet death that the unlinker is still inside the side lock:
// the lock is bit 2 of `head` (object.hpp), which the quiet death requires
// clear. Once the unlinker is out, `head` is the basic ref alone again.
TEST_F(UnitShareTest, TheQuietDeathReadsTheSideLockInTheListHead) {
  Strong<Node> x = make<Node>("x");
  ref<Node> basic(x);
  detail::SideTable* s = side_of(x);
  auto head = [&] { return s->head.load(); };
  EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned);
  {
    WeakSet<Node> set{x};
    EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned | detail::kHeadOthers);
    set.discard(x);  // weak_detach_sole, under the lock (behind the basic ref)
    EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned);
    s->lock();
    EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned | detail::kHeadLocked);
    s->unlock();
    set.add(x);
  }  // the entry's last release
  EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned);
  {
    ref<Node> with_callback(x, [](const ref<Node>&) {});
    EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned | detail::kHeadOthers);
  }  // a weakref with a unit of its own leaves: the list is the basic ref again
  EXPECT_EQ(head() & detail::kHeadBits, detail::kHeadPinned);
  EXPECT_EQ(getweakrefcount(x), 1U);
  basic = ref<Node>();
  x.reset();  // the quiet death
}

TEST_F(UnitShareTest, QuietDeathAfterTheEntriesLeft) {
  WeakSet<Node> set;
  for (int i = 0; i < 4; ++i) {
    Strong<Node> x = make<Node>("x");
    if (i & 1) (void)ref<Node>(x);
    set.add(x);
    if (i & 2) set.add(make<Node>("gone"));  // a dead entry queued meanwhile
    set.discard(x);
    EXPECT_EQ(getweakrefcount(x), 0U);
    x.reset();
    EXPECT_EQ(set.size(), 0U);
  }
}

// The collector clears a garbage container's entry weakrefs while their
// referents live: each gets a unit of its own, dropped with the container.
template <class C>
struct Holder {
  C container;
  Strong<Holder> self;
  Holder() { ++g_live; }
  ~Holder() { --g_live; }
  void trace(gc::Visitor& v) { v(container, self); }
};

TEST_F(UnitShareTest, GarbageContainerWhoseReferentsLiveOn) {
  Strong<Node> x = make<Node>("x");
  Strong<Node> y = make<Node>("y");
  ref<Node> basic(x);
  {
    Strong<Holder<WeakSet<Node>>> h = make<Holder<WeakSet<Node>>>();
    h->self = h;
    h->container.add(x);
    h->container.add(y);
    Strong<Holder<WeakValueDictionary<int, Node>>> v =
        make<Holder<WeakValueDictionary<int, Node>>>();
    v->self = v;
    v->container[1] = x;
    EXPECT_EQ(getweakrefcount(x), 3U);
  }
  detail::SideTable* sx = side_of(x);
  detail::SideTable* sy = side_of(y);
  EXPECT_EQ(units(sx), 1U);
  EXPECT_EQ(units(sy), 1U);
  EXPECT_EQ(gc::collect(), 2U);
  EXPECT_EQ(units(sx), 1U);  // the containers' weakrefs are gone
  EXPECT_EQ(units(sy), 1U);
  EXPECT_EQ(getweakrefcount(x), 1U);
  EXPECT_EQ(getweakrefcount(y), 0U);
  EXPECT_TRUE(basic() == x);
  WeakSet<Node> again{x, y};
  EXPECT_EQ(units(sx), 1U);
  EXPECT_EQ(getweakrefcount(y), 1U);
  x.reset();
  y.reset();
  EXPECT_EQ(again.size(), 0U);
  EXPECT_FALSE(basic());
}

// A garbage container whose entry weakref a handle outside the garbage
// holds: the collector leaves that weakref alone (it is not garbage), and
// the referent's later death clears it.
TEST_F(UnitShareTest, GarbageContainerEntryHeldFromOutside) {
  Strong<Node> x = make<Node>("x");
  std::vector<ref<>> held;
  {
    Strong<Holder<WeakSet<Node>>> h = make<Holder<WeakSet<Node>>>();
    h->self = h;
    h->container.add(x);
    held = getweakrefs(x);
  }
  detail::SideTable* s = side_of(x);
  EXPECT_EQ(gc::collect(), 1U);
  EXPECT_EQ(getweakrefcount(x), 1U);
  EXPECT_EQ(units(s), 1U);
  x.reset();
  EXPECT_EQ(units(s), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();
}

// A garbage referent: the collector clears its weakrefs before it dies;
// the entry weakrefs (and the live basic ref) get units of their own.
TEST_F(UnitShareTest, GarbageReferentsEntryWeakrefs) {
  WeakSet<Node> set;
  WeakValueDictionary<int, Node> values;
  detail::SideTable* s;
  std::vector<ref<Node>> held;
  {
    Strong<Node> x = make<Node>("x");
    x->a = x;
    set.add(x);
    values[1] = x;
    (void)ref<Node>(x);  // the pinned basic ref, held by no handle
    held = values.valuerefs();
    s = side_of(x);
    EXPECT_EQ(units(s), 1U);
  }
  EXPECT_EQ(gc::collect(), 1U);
  // set's and values' weakrefs, each with a unit (the basic ref went with
  // its pin at the death, with the object's unit).
  EXPECT_EQ(units(s), 2U);
  EXPECT_EQ(set.size(), 0U);
  EXPECT_EQ(values.size(), 0U);
  set.clear();
  values.clear();
  EXPECT_EQ(units(s), 1U);
  EXPECT_FALSE(held[0]());
  held.clear();
}

}  // namespace
}  // namespace weakref::testing
