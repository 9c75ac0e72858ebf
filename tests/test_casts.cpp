// Casts of Strong: static/const/dynamic_pointer_cast, exact_pointer_cast, and
// the checked cast out of Strong<void> (what gc::garbage(), get_objects(),
// get_referrers() and ref<> give back) and out of non-polymorphic types
// (issue #12, item 10).
#include <string>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

// Polymorphic, with a second base at a non-zero offset.
struct Animal {
  virtual ~Animal() = default;
  std::string sound = "...";
};
struct Pet {
  virtual ~Pet() = default;
  std::string owner = "ann";
};
struct Dog : Animal, Pet {
  int legs = 4;
};

// Not polymorphic.
struct Shape {
  int sides = 0;
};
struct Square : Shape {
  Square() { sides = 4; }
  double side = 2;
};
struct Mixin {
  int mixed = 7;
};
struct Tile : Square, Mixin {};

// An ambiguous base (two Shape subobjects) and a private one.
struct Left : Shape {};
struct Right : Shape {};
struct Diamond : Left, Right {};
struct Hidden : private Shape {
  int visible = 1;
};

// A virtual base (shared: unambiguous).
struct Root {
  int root = 5;
};
struct VLeft : virtual Root {};
struct VRight : virtual Root {};
struct VDiamond : VLeft, VRight {};

using CastTest = Test;

TEST_F(CastTest, ExactTypeFromStrongVoid) {
  Strong<void> v = make<Dog>();
  Strong<Dog> d = dynamic_pointer_cast<Dog>(v);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->legs, 4);
  EXPECT_TRUE(d == v);
  EXPECT_EQ(v.use_count(), 2);
  EXPECT_TRUE(exact_pointer_cast<Dog>(v) == d);
}

TEST_F(CastTest, BaseOfAPolymorphicObjectFromStrongVoid) {
  Strong<void> v = make<Dog>();
  Strong<Animal> a = dynamic_pointer_cast<Animal>(v);
  Strong<Pet> p = dynamic_pointer_cast<Pet>(v);
  ASSERT_TRUE(a);
  ASSERT_TRUE(p);
  EXPECT_EQ(a->sound, "...");
  EXPECT_EQ(p->owner, "ann");  // the second base: the pointer is adjusted
  EXPECT_NE(static_cast<void*>(p.get()), v.get());
  EXPECT_EQ(p.get(), static_cast<Pet*>(static_cast<Dog*>(v.get())));
  EXPECT_TRUE(a == v && p == v);
  EXPECT_EQ(v.use_count(), 3);
  // exact_pointer_cast is for the exact type only.
  EXPECT_FALSE(exact_pointer_cast<Animal>(v));
  // Back down from a base: dynamic_cast, as before.
  EXPECT_TRUE(dynamic_pointer_cast<Dog>(p) == v);
  EXPECT_TRUE(dynamic_pointer_cast<Pet>(a) == v);  // cross cast
}

TEST_F(CastTest, BasesOfANonPolymorphicObject) {
  Strong<void> v = make<Tile>();
  Strong<Shape> s = dynamic_pointer_cast<Shape>(v);
  Strong<Square> q = dynamic_pointer_cast<Square>(v);
  Strong<Mixin> m = dynamic_pointer_cast<Mixin>(v);
  ASSERT_TRUE(s && q && m);
  EXPECT_EQ(s->sides, 4);
  EXPECT_EQ(q->side, 2);
  EXPECT_EQ(m->mixed, 7);
  EXPECT_EQ(m.get(), static_cast<Mixin*>(static_cast<Tile*>(v.get())));
  // From a non-polymorphic base back down or across (no dynamic_cast
  // possible): the object's own type decides.
  EXPECT_TRUE(dynamic_pointer_cast<Tile>(s) == v);
  EXPECT_TRUE(dynamic_pointer_cast<Mixin>(s) == v);
  EXPECT_FALSE(dynamic_pointer_cast<Dog>(s));
  Strong<Shape> plain = make<Shape>();
  EXPECT_FALSE(dynamic_pointer_cast<Square>(plain));
}

TEST_F(CastTest, AmbiguousAndPrivateBasesGiveNull) {
  Strong<void> diamond = make<Diamond>();
  EXPECT_FALSE(dynamic_pointer_cast<Shape>(diamond));  // two Shapes: ambiguous
  EXPECT_TRUE(dynamic_pointer_cast<Left>(diamond));
  EXPECT_TRUE(dynamic_pointer_cast<Right>(diamond));
  Strong<void> hidden = make<Hidden>();
  EXPECT_FALSE(dynamic_pointer_cast<Shape>(hidden));  // private base
  EXPECT_TRUE(dynamic_pointer_cast<Hidden>(hidden));
  Strong<void> vd = make<VDiamond>();
  Strong<Root> r = dynamic_pointer_cast<Root>(vd);  // a virtual base is one base
  ASSERT_TRUE(r);
  EXPECT_EQ(r->root, 5);
}

TEST_F(CastTest, UnrelatedTypesAndNullGiveNull) {
  Strong<void> v = make<Dog>();
  EXPECT_FALSE(dynamic_pointer_cast<Shape>(v));
  EXPECT_FALSE(dynamic_pointer_cast<std::string>(v));
  EXPECT_EQ(v.use_count(), 1);  // failed casts take no reference
  EXPECT_FALSE(dynamic_pointer_cast<Dog>(Strong<void>()));
  Strong<void> n = make<int>(3);
  EXPECT_EQ(*dynamic_pointer_cast<int>(n), 3);
  EXPECT_FALSE(dynamic_pointer_cast<long>(n));
  EXPECT_FALSE(dynamic_pointer_cast<unsigned>(n));
}

TEST_F(CastTest, ConstTargets) {
  Strong<void> v = make<Dog>();
  Strong<const Animal> a = dynamic_pointer_cast<const Animal>(v);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->sound, "...");
  Strong<const Dog> d = dynamic_pointer_cast<const Dog>(v);
  EXPECT_TRUE(d == v);
}

TEST_F(CastTest, WhatTheCollectorAndWeakrefsGiveBack) {
  struct Cell : Animal {
    Strong<Cell> next;
    void trace(gc::Visitor& v) { v(next); }
  };
  Strong<Cell> c = make<Cell>();
  Strong<Cell> d = make<Cell>();
  c->next = d;
  {
    // get_referrers: Strong<void> back to a base of the referrer.
    std::vector<Strong<void>> referrers = gc::get_referrers(d);
    ASSERT_EQ(referrers.size(), 1U);
    Strong<Animal> referrer = dynamic_pointer_cast<Animal>(referrers[0]);
    EXPECT_TRUE(referrer == c);
    // getweakrefs gives ref<>: its referent back to a base.
    ref<Cell> r(d);
    std::vector<ref<>> refs = getweakrefs(d);
    ASSERT_EQ(refs.size(), 1U);
    EXPECT_TRUE(dynamic_pointer_cast<Animal>(refs[0]()) == d);
  }
  // gc.garbage under DEBUG_SAVEALL.
  const int flags = gc::get_debug();
  gc::set_debug(gc::DEBUG_SAVEALL);
  d->next = d;
  d.reset();
  c.reset();
  gc::collect();
  std::vector<Strong<void>> garbage = gc::garbage();
  gc::clear_garbage();
  gc::set_debug(flags);
  ASSERT_EQ(garbage.size(), 1U);
  EXPECT_TRUE(dynamic_pointer_cast<Animal>(garbage[0]));
  for (auto& g : garbage) dynamic_pointer_cast<Cell>(g)->next.reset();  // break the cycle
}

}  // namespace
}  // namespace weakref::testing
