// Ports of CPython 3.11's Lib/test/test_weakref.py, class WeakMethodTestCase.
// Python's WeakMethod(o.some_method) is WeakMethod(o, &Object::some_method);
// r() (the bound method or None) is r.lock(). MAPPING.md lists
// every method, with the reason for those that have no C++ meaning.
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

// Python's `class Object` of test_weakref.py.
struct Object {
  int arg;
  explicit Object(int a) : arg(a) { ++g_live; }
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  ~Object() { --g_live; }
  int some_method() const { return 4; }
  int other_method() const { return 5; }
};

// WeakMethodTestCase._subclass(): an Object subclass overriding some_method.
struct Subclass : Object {
  using Object::Object;
  int some_method() const { return 6; }
};

using Method = int (Object::*)() const;
using WM = WeakMethod<Method>;
using SubWM = WeakMethod<int (Subclass::*)() const>;

template <class A, class B>
concept ComparesWith = requires(const A& a, const B& b) {
  a == b;
};

class WeakMethodTestCase : public Test {};

TEST_F(WeakMethodTestCase, test_alive) {
  Strong<Object> o = make<Object>(1);
  WM r(o, &Object::some_method);
  // A WeakMethod is a weak reference (ReferenceType): one of o's weakrefs.
  EXPECT_TRUE((std::is_base_of_v<detail::WeakHandle, WM>));
  std::vector<ref<>> refs = getweakrefs(o);
  ASSERT_EQ(refs.size(), 1U);
  EXPECT_TRUE(refs[0].is(r));
  // r() is the bound method: its __self__ is o, its __func__ the function.
  WM::BoundMethod m = r.lock();
  ASSERT_TRUE(m);
  EXPECT_TRUE(m.object() == o);
  EXPECT_EQ(m.function(), &Object::some_method);
  EXPECT_EQ(m(), 4);
  EXPECT_EQ(r(), 4);  // calling through the WeakMethod itself
}

TEST_F(WeakMethodTestCase, test_object_dead) {
  Strong<Object> o = make<Object>(1);
  WM r(o, &Object::some_method);
  o.reset();
  gc::collect();
  EXPECT_FALSE(r.lock());
  EXPECT_EQ(r(), std::nullopt);
}

TEST_F(WeakMethodTestCase, test_callback_when_object_dead) {
  // Test callback behaviour when object dies first.
  std::vector<SubWM> calls;
  auto cb = [&calls](SubWM arg) { calls.push_back(arg); };
  Strong<Subclass> o = make<Subclass>(1);
  SubWM r(o, &Subclass::some_method, cb);
  EXPECT_EQ(r(), 6);
  o.reset();
  gc::collect();
  ASSERT_EQ(calls.size(), 1U);
  EXPECT_TRUE(calls[0].is(r));
  // Callback is only called once (Python then replaces the method; here
  // nothing else about r can die: collect and drop the other handles).
  gc::collect();
  SubWM copy = r;
  copy = SubWM();
  EXPECT_EQ(calls.size(), 1U);
}

TEST_F(WeakMethodTestCase, test_no_cycles) {
  // A WeakMethod doesn't create any reference cycle to itself: when its last
  // handle goes, the weakref object and its callback (with whatever the
  // callback holds) are gone, while the object lives on.
  struct Token {
    Token() { ++g_live; }
    ~Token() { --g_live; }
  };
  Strong<Object> o = make<Object>(1);
  Strong<Token> token = make<Token>();
  ref<Token> wr(token);
  auto r = std::make_unique<WM>(o, &Object::some_method, [token](const WM&) {});
  token.reset();
  EXPECT_TRUE(wr());  // held by the callback
  EXPECT_EQ(getweakrefcount(o), 1U);
  r.reset();
  EXPECT_FALSE(wr());
  EXPECT_EQ(getweakrefcount(o), 0U);
}

TEST_F(WeakMethodTestCase, test_equality) {
  // Alive WeakMethods are equal when their objects and functions are; dead
  // ones compare by identity. The objects compare as Strong<T> handles (the
  // same object); CPython compares them with their own __eq__, so it also
  // finds WeakMethods of distinct equal objects equal: see
  // MAPPING.md.
  auto eq = [](const WM& a, const WM& b) {
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a != b);
  };
  auto ne = [](const WM& a, const WM& b) {
    EXPECT_TRUE(a != b);
    EXPECT_FALSE(a == b);
  };
  Strong<Object> x = make<Object>(1);
  WM a(x, &Object::some_method);
  WM b(x, &Object::some_method);
  WM c(x, &Object::other_method);
  WM d(x, &Object::other_method);
  // Same object, same method
  eq(a, b);
  eq(c, d);
  // Same object, different method
  ne(a, c);
  ne(a, d);
  ne(b, c);
  ne(b, d);
  // Other objects, same or different method
  Strong<Object> z = make<Object>(2);
  WM e(z, &Object::some_method);
  WM f(z, &Object::other_method);
  ne(a, e);
  ne(a, f);
  ne(b, e);
  ne(b, f);
  // Compare with different types: a bound method is not a WeakMethod.
  EXPECT_FALSE((ComparesWith<WM, WM::BoundMethod>));
  x.reset();
  z.reset();
  gc::collect();
  // Dead WeakMethods compare by identity
  WM a2 = a;
  const WM* refs[] = {&a, &b, &c, &d, &e, &f, &a2};
  for (const WM* q : refs)
    for (const WM* r : refs) {
      EXPECT_EQ(*q == *r, q->is(*r));
      EXPECT_EQ(*q != *r, !q->is(*r));
    }
}

TEST_F(WeakMethodTestCase, test_hashing) {
  // Equal WeakMethods hash alike, and keep their hash after death. (A dead
  // WeakMethod never hashed while alive is hashable too: the documented
  // difference from CPython's TypeError.)
  Strong<Object> x = make<Object>(1);
  Strong<Object> y = make<Object>(1);
  WM a(x, &Object::some_method);
  WM b(x, &Object::some_method);
  WM c(y, &Object::other_method);
  std::hash<WM> hash;
  ASSERT_TRUE(a == b);
  EXPECT_EQ(hash(a), hash(b));
  const std::size_t ha = hash(a);
  const std::size_t hc = hash(WM(y, &Object::other_method));
  x.reset();
  y.reset();
  gc::collect();
  EXPECT_EQ(hash(a), ha);
  EXPECT_EQ(hash(b), ha);
  EXPECT_EQ(hash(c), hc);
}

}  // namespace
}  // namespace weakref::testing
