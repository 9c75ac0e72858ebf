// Ports of CPython 3.11's Lib/test/test_weakref.py, class ReferencesTestCase.
// Each test keeps the Python method's name; MAPPING.md lists every
// method, with the reason for those that have no C++ meaning.
//
// Translation rules used throughout:
//  * A Python object is a managed object (weakref::make<T>), `del o` is
//    o.reset(), gc.collect() / gc_collect() is weakref::gc::collect().
//  * Python's dynamic attributes are members; `hasattr(o, 'foo')` is an
//    std::optional member that holds a value.
//  * Proxy forwarding: Python forwards every protocol slot; proxy<T> forwards
//    -> , *, (), [], ==, and bool; other operators of T are reached through
//    *p. Each such port also checks that the dead proxy throws.
//  * "Raises TypeError" for a misuse that C++ rejects at compile time is
//    checked with a type trait or a requires-expression.
#include <algorithm>
#include <array>
#include <cstddef>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

// Misuses that C++ rejects at compile time (Python raises TypeError).
template <class P>
concept Subscriptable = requires(const P& p) {
  p[0];
};
template <class A, class B>
concept EqualityComparable = requires(const A& a, const B& b) {
  a == b;
};
template <class A>
concept HasLess = requires(const A& a, const A& b) {
  a < b;
};
template <class A>
concept HasGreater = requires(const A& a, const A& b) {
  a > b;
};
template <class A>
concept HasLessEqual = requires(const A& a, const A& b) {
  a <= b;
};
template <class A>
concept HasGreaterEqual = requires(const A& a, const A& b) {
  a >= b;
};

// Counts itself in g_live, so the fixture's leak check covers these types.
struct Counted {
  Counted() noexcept { ++g_live; }
  Counted(const Counted&) noexcept { ++g_live; }
  Counted& operator=(const Counted&) noexcept = default;
  ~Counted() { --g_live; }
};

// Python's `class C` with a method; foo and bar stand for the attributes the
// tests add. Python objects are true by default.
struct C : Counted {
  std::optional<int> foo;
  std::optional<int> bar;
  int method() const { return 1; }
  explicit operator bool() const { return true; }
};

// Python's `class Object`: ordered by value, two methods. (Its __eq__ plays
// no part in the C++ refs' equality: see test_equality.)
struct Object : Counted {
  int arg;
  explicit Object(int a) : arg(a) {}
  friend auto operator<=>(const Object& a, const Object& b) { return a.arg <=> b.arg; }
  int some_method() const { return 4; }
  int other_method() const { return 5; }
};

// The factories of check_basic_ref / check_basic_callback: an instance, a
// function object (a closure), a bound method (the closure binds an object),
// and, for test_cfunction, an object wrapping a plain C function.
Strong<C> create_instance() { return make<C>(); }
auto create_function() {
  auto f = [] { return 0; };
  return make<decltype(f)>(f);
}
auto create_bound_method() {
  auto m = std::bind_front(&C::method, make<C>());
  return make<decltype(m)>(std::move(m));
}
extern "C" int c_function() { return 7; }
struct CFunction {
  int (*fn)();
  explicit CFunction(int (*f)()) : fn(f) {}
  int operator()() const { return fn(); }
};
Strong<CFunction> create_cfunction() { return make<CFunction>(&c_function); }

class ReferencesTestCase : public Test {
 protected:
  // TestBase.callback: counts the calls (accepts a ref or a proxy).
  auto callback() {
    return [this](const auto&) { ++cbcalled; };
  }

  template <class Factory>
  void check_basic_ref(Factory factory) {
    auto o = factory();
    ref r(o);
    EXPECT_TRUE(r()) << "weak reference to live object should be live";
    auto o2 = r();
    EXPECT_TRUE(o == o2) << "<ref>() should return original object if live";
  }

  template <class Factory>
  void check_basic_callback(Factory factory) {
    cbcalled = 0;
    auto o = factory();
    ref r(o, callback());
    o.reset();
    gc::collect();
    EXPECT_EQ(cbcalled, 1) << "callback did not properly set 'cbcalled'";
    EXPECT_FALSE(r()) << "ref2 should be dead after deleting object reference";
  }

  // Changes through the object show through the proxy, and back.
  template <class T>
  void check_proxy(const Strong<T>& o, const proxy<T>& p) {
    o->foo = 1;
    EXPECT_EQ(p->foo, 1) << "proxy does not reflect attribute addition";
    o->foo = 2;
    EXPECT_EQ(p->foo, 2) << "proxy does not reflect attribute modification";
    o->foo.reset();
    EXPECT_FALSE(p->foo.has_value()) << "proxy does not reflect attribute removal";

    p->foo = 1;
    EXPECT_EQ(o->foo, 1) << "object does not reflect attribute addition via proxy";
    p->foo = 2;
    EXPECT_EQ(o->foo, 2) << "object does not reflect attribute modification via proxy";
    p->foo.reset();
    EXPECT_FALSE(o->foo.has_value()) << "object does not reflect attribute removal via proxy";
  }

  template <template <class> class Weak>
  void check_shared_without_callback() {
    Strong<Object> o = make<Object>(1);
    std::function<void(Weak<Object>)> none;  // an empty callback: Python's None
    {
      Weak<Object> p1(o, nullptr);
      Weak<Object> p2(o, nullptr);
      EXPECT_TRUE(p1.is(p2)) << "both callbacks were None in the C API";
    }
    {
      Weak<Object> p1(o);
      Weak<Object> p2(o, none);
      EXPECT_TRUE(p1.is(p2)) << "callbacks were NULL, None in the C API";
    }
    {
      Weak<Object> p1(o);
      Weak<Object> p2(o);
      EXPECT_TRUE(p1.is(p2)) << "both callbacks were NULL in the C API";
    }
    {
      Weak<Object> p1(o, none);
      Weak<Object> p2(o);
      EXPECT_TRUE(p1.is(p2)) << "callbacks were None, NULL in the C API";
      EXPECT_FALSE(p1.has_callback());
    }
  }

  template <template <class> class Weak>
  void check_gc_during_creation();

  int cbcalled = 0;
};

TEST_F(ReferencesTestCase, test_basic_ref) {
  check_basic_ref(&create_instance);
  check_basic_ref(&create_function);
  check_basic_ref(&create_bound_method);

  // Streaming (repr) works for a live and a dead reference.
  Strong<C> o = make<C>();
  ref<C> wr(o);
  std::ostringstream live;
  live << wr;
  EXPECT_THAT(live.str(),
              ::testing::MatchesRegex("<weakref at 0x[0-9a-f]+; to '.*C' at 0x[0-9a-f]+>"));
  o.reset();
  std::ostringstream dead;
  dead << wr;
  EXPECT_THAT(dead.str(), ::testing::MatchesRegex("<weakref at 0x[0-9a-f]+; dead>"));
}

TEST_F(ReferencesTestCase, test_repr_failure_gh99184) {
  // A dict subclass whose attribute lookup fails: the weakref's text names the
  // type without asking the object anything.
  struct MyConfig : Counted, std::map<std::string, int> {};
  Strong<MyConfig> obj = make<MyConfig>();
  (*obj)["offset"] = 5;
  ref<MyConfig> obj_weakref(obj);
  std::ostringstream os;
  os << obj_weakref;
  EXPECT_THAT(os.str(), ::testing::HasSubstr("MyConfig"));
}

TEST_F(ReferencesTestCase, test_basic_callback) {
  check_basic_callback(&create_instance);
  check_basic_callback(&create_function);
  check_basic_callback(&create_bound_method);
}

TEST_F(ReferencesTestCase, test_cfunction) {
  Strong<CFunction> f = create_cfunction();
  ref<CFunction> wr(f);
  EXPECT_TRUE(wr() == f);
  EXPECT_EQ((*wr())(), 7);
  f.reset();
  EXPECT_FALSE(wr());
  check_basic_ref(&create_cfunction);
  check_basic_callback(&create_cfunction);
}

TEST_F(ReferencesTestCase, test_multiple_callbacks) {
  Strong<C> o = make<C>();
  ref<C> ref1(o, callback());
  ref<C> ref2(o, callback());
  o.reset();
  gc::collect();
  EXPECT_FALSE(ref1()) << "expected reference to be invalidated";
  EXPECT_FALSE(ref2()) << "expected reference to be invalidated";
  EXPECT_EQ(cbcalled, 2) << "callback not called the right number of times";
}

TEST_F(ReferencesTestCase, test_multiple_selfref_callbacks) {
  // The callback of the newest ref (run first) uses the first ref: every ref
  // is already cleared when any callback runs.
  Strong<C> c = make<C>();
  ref<C> self_ref;
  std::vector<bool> saw_live;
  auto cb = [&](const ref<C>&) { saw_live.push_back(static_cast<bool>(self_ref())); };
  self_ref = ref<C>(c, cb);
  ref<C> ref1(c, cb);
  c.reset();
  EXPECT_EQ(saw_live, (std::vector<bool>{false, false}));
}

TEST_F(ReferencesTestCase, test_proxy_ref) {
  Strong<C> o = make<C>();
  o->bar = 1;
  proxy<C> ref1(o, callback());
  proxy<C> ref2(o, callback());
  o.reset();
  gc::collect();

  auto check = [](const proxy<C>& p) { (void)p->bar; };
  EXPECT_THROW(check(ref1), ReferenceError);
  EXPECT_THROW(check(ref2), ReferenceError);
  proxy<C> ref3(make<C>());  // the temporary dies at once
  gc::collect();
  EXPECT_THROW((void)static_cast<bool>(ref3), ReferenceError);
  EXPECT_EQ(cbcalled, 2);
}

TEST_F(ReferencesTestCase, test_ref_reuse) {
  Strong<C> o = make<C>();
  ref<C> ref1(o);
  // a proxy in between makes no difference
  proxy<C> p(o);
  ref<C> ref2(o);
  EXPECT_TRUE(ref1.is(ref2)) << "reference object w/out callback should be re-used";

  o = make<C>();
  p = proxy<C>(o);
  ref1 = ref<C>(o);
  ref2 = ref<C>(o);
  EXPECT_TRUE(ref1.is(ref2)) << "reference object w/out callback should be re-used";
  EXPECT_EQ(getweakrefcount(o), 2U) << "wrong weak ref count for object";
  p = proxy<C>();  // del p
  gc::collect();
  EXPECT_EQ(getweakrefcount(o), 1U) << "wrong weak ref count for object after deleting proxy";
}

TEST_F(ReferencesTestCase, test_proxy_reuse) {
  Strong<C> o = make<C>();
  proxy<C> proxy1(o);
  ref<C> r(o);
  proxy<C> proxy2(o);
  EXPECT_TRUE(proxy1.is(proxy2)) << "proxy object w/out callback should have been re-used";
}

// collections.UserList, with the parts of the list protocol the test uses.
struct UserList : Counted {
  std::vector<int> data;
  UserList() = default;
  explicit UserList(std::vector<int> d) : data(std::move(d)) {}
  explicit operator bool() const { return !data.empty(); }
  void append(int x) { data.push_back(x); }
  std::size_t size() const { return data.size(); }
  int& operator[](std::size_t i) { return data.at(i); }
  auto begin() { return data.begin(); }
  auto end() { return data.end(); }
  std::vector<int> slice(std::size_t from, std::size_t to) const {
    return {data.begin() + static_cast<std::ptrdiff_t>(from),
            data.begin() + static_cast<std::ptrdiff_t>(to)};
  }
  friend bool operator==(const UserList& a, const UserList& b) { return a.data == b.data; }
};

TEST_F(ReferencesTestCase, test_basic_proxy) {
  Strong<C> o = make<C>();
  check_proxy(o, proxy<C>(o));

  Strong<UserList> L = make<UserList>();
  proxy<UserList> p(L);
  EXPECT_FALSE(static_cast<bool>(p)) << "proxy for empty UserList should be false";
  p->append(12);
  EXPECT_EQ(L->size(), 1U);
  EXPECT_TRUE(static_cast<bool>(p)) << "proxy for non-empty UserList should be true";
  p->data = {2, 3};  // p[:] = [2, 3]
  EXPECT_EQ(L->size(), 2U);
  EXPECT_EQ(p->size(), 2U);
  UserList& items = *p;
  EXPECT_NE(std::find(items.begin(), items.end(), 3), items.end())
      << "proxy didn't support __contains__() properly";
  p[1] = 5;
  EXPECT_EQ(L->data[1], 5);
  EXPECT_EQ(p[1], 5);
  Strong<UserList> L2 = make<UserList>(L->data);
  proxy<UserList> p2(L2);
  EXPECT_TRUE(p == p2);
  Strong<UserList> L3 = make<UserList>(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  proxy<UserList> p3(L3);
  EXPECT_EQ(L3->slice(0, 10), p3->slice(0, 10));
  EXPECT_EQ(L3->slice(5, 10), p3->slice(5, 10));
  EXPECT_EQ(L3->slice(0, 5), p3->slice(0, 5));
  EXPECT_EQ(L3->slice(2, 5), p3->slice(2, 5));
}

TEST_F(ReferencesTestCase, test_proxy_unicode) {
  // bytes(proxy) uses the referent's __bytes__: T's conversions apply to *p.
  // (The dir() half of the Python test has no C++ meaning.)
  using Bytes = std::vector<unsigned char>;
  struct S : Counted {
    explicit operator std::string() const { return "string"; }
    explicit operator Bytes() const { return {'b', 'y', 't', 'e', 's'}; }
  };
  Strong<S> instance = make<S>();
  proxy<S> p(instance);
  EXPECT_EQ(static_cast<Bytes>(*p), (Bytes{'b', 'y', 't', 'e', 's'}));
  EXPECT_EQ(static_cast<std::string>(*p), "string");
  instance.reset();
  EXPECT_THROW((void)static_cast<Bytes>(*p), ReferenceError);
}

TEST_F(ReferencesTestCase, test_proxy_index) {
  // operator.index(p): the referent's conversion to an integer.
  struct I : Counted {
    operator std::size_t() const { return 10; }  // NOLINT: __index__
  };
  Strong<I> o = make<I>();
  proxy<I> p(o);
  std::array<int, 11> table{};
  table[10] = 42;
  EXPECT_EQ(table[*p], 42);
  const std::size_t index = *p;
  EXPECT_EQ(index, 10U);
  o.reset();
  EXPECT_THROW((void)static_cast<std::size_t>(*p), ReferenceError);
}

TEST_F(ReferencesTestCase, test_proxy_div) {
  // p // 5 and p //= 5 reach the referent's operators; the in-place form's
  // result is what the operator returns (Python rebinds p to it).
  struct D : Counted {
    int operator/(int) const { return 42; }
    int operator/=(int) { return 21; }
  };
  Strong<D> o = make<D>();
  proxy<D> p(o);
  EXPECT_EQ(*p / 5, 42);
  EXPECT_EQ(*p /= 5, 21);
  o.reset();
  EXPECT_THROW((void)(*p / 5), ReferenceError);
}

TEST_F(ReferencesTestCase, test_shared_ref_without_callback) {
  check_shared_without_callback<ref>();
}

TEST_F(ReferencesTestCase, test_shared_proxy_without_callback) {
  check_shared_without_callback<proxy>();
}

struct Callable : Counted {
  std::optional<int> foo;
  std::string bar;
  void operator()(std::string x) { bar = std::move(x); }
};

TEST_F(ReferencesTestCase, test_callable_proxy) {
  Strong<Callable> o = make<Callable>();
  proxy<Callable> ref1(o);
  check_proxy(o, ref1);

  // CallableProxyType: a proxy is callable exactly when its referent is.
  EXPECT_TRUE((std::is_invocable_v<const proxy<Callable>&, std::string>))
      << "proxy is not of callable type";
  EXPECT_FALSE((std::is_invocable_v<const proxy<C>&, std::string>));
  ref1("twinkies!");
  EXPECT_EQ(o->bar, "twinkies!") << "call through proxy not passed through to original";
  ref1(std::string("Splat."));
  EXPECT_EQ(o->bar, "Splat.") << "call through proxy not passed through to original";

  // too few and too many arguments
  EXPECT_FALSE((std::is_invocable_v<const proxy<Callable>&>));
  EXPECT_FALSE((std::is_invocable_v<const proxy<Callable>&, int, int, int>));
  o.reset();
  EXPECT_THROW(ref1("late"), ReferenceError);
}

TEST_F(ReferencesTestCase, test_proxy_deletion) {
  // del f[0]: the element deletion of C++ containers is erase(key).
  struct Foo : Counted {
    std::optional<int> result;
    void erase(int accessor) { result = accessor; }
  };
  Strong<Foo> g = make<Foo>();
  proxy<Foo> f(g);
  f->erase(0);
  EXPECT_EQ(f->result, 0);
}

TEST_F(ReferencesTestCase, test_proxy_bool) {
  struct List : Counted {
    std::vector<int> items;
    explicit operator bool() const { return !items.empty(); }
  };
  Strong<List> lyst = make<List>();
  EXPECT_EQ(static_cast<bool>(proxy<List>(lyst)), static_cast<bool>(*lyst));
  lyst->items.push_back(1);
  EXPECT_EQ(static_cast<bool>(proxy<List>(lyst)), static_cast<bool>(*lyst));
}

TEST_F(ReferencesTestCase, test_proxy_iter) {
  // bpo-38395: a method called through the proxy drops the last other
  // reference to the object; the proxy keeps it alive until the call returns
  // (ASan would report the use after free otherwise). Each forwarding path.
  struct MyObj : Counted {
    Strong<MyObj>* obj = nullptr;
    std::string name = "me";
    bool contains(const std::string& s) {
      obj->reset();  // del obj
      return s == name;
    }
    bool operator()(const std::string& s) { return contains(s); }
    bool operator[](const std::string& s) { return contains(s); }
  };
  for (int path = 0; path < 3; ++path) {
    Strong<MyObj> obj = make<MyObj>();
    obj->obj = &obj;
    proxy<MyObj> p(obj);
    bool found = true;
    if (path == 0) found = p->contains("blech");
    if (path == 1) found = p("blech");
    if (path == 2) found = p["blech"];
    EXPECT_FALSE(found) << "path " << path;
    EXPECT_FALSE(obj);
    EXPECT_TRUE(p.expired()) << "path " << path;
  }
}

// A generator: each call yields the next value, nullopt when exhausted (the
// C++ spelling of Python's iterator protocol, next()).
struct Generator : Counted {
  std::vector<int> arr;
  std::size_t i = 0;
  explicit Generator(std::vector<int> a) : arr(std::move(a)) {}
  std::optional<int> operator()() {
    if (i == arr.size()) return std::nullopt;
    return arr[i++];
  }
};

TEST_F(ReferencesTestCase, test_proxy_next) {
  Strong<Generator> it = make<Generator>(std::vector<int>{4, 5, 6});
  struct IteratesWeakly {
    const Strong<Generator>* it;
    proxy<Generator> iter() const { return proxy<Generator>(*it); }
  };
  IteratesWeakly weak_it{&it};
  std::vector<int> list;
  proxy<Generator> next = weak_it.iter();
  while (std::optional<int> v = next()) list.push_back(*v);  // calls through the proxy
  EXPECT_EQ(list, (std::vector<int>{4, 5, 6}));
}

TEST_F(ReferencesTestCase, test_proxy_bad_next) {
  // bpo-44720: a proxy to something that cannot be called (not a generator)
  // offers no call at all -- rejected at compile time, not at run time.
  struct NotAnIterator : Counted {};
  EXPECT_FALSE((std::is_invocable_v<const proxy<NotAnIterator>&>));
  EXPECT_TRUE((std::is_invocable_v<const proxy<Generator>&>));
  EXPECT_FALSE(Subscriptable<proxy<NotAnIterator>>);
}

TEST_F(ReferencesTestCase, test_proxy_reversed) {
  // reversed(p) uses the referent's __reversed__: C++'s rbegin()/rend().
  struct MyObj : Counted {
    std::string s = "abc";
    std::size_t size() const { return 3; }
    auto rbegin() const { return s.rbegin(); }
    auto rend() const { return s.rend(); }
  };
  Strong<MyObj> obj = make<MyObj>();
  proxy<MyObj> p(obj);
  EXPECT_EQ(std::string(std::rbegin(*p), std::rend(*p)), "cba");
  obj.reset();
  EXPECT_THROW((void)std::rbegin(*p), ReferenceError);
}

}  // namespace
}  // namespace weakref::testing

// test_proxy_hash: a referent with a hash.
namespace weakref::testing {
namespace {
struct Hashable : Counted {};
struct Unhashable : Counted {};
}  // namespace
}  // namespace weakref::testing
template <>
struct std::hash<weakref::testing::Hashable> {
  std::size_t operator()(const weakref::testing::Hashable&) const noexcept { return 42; }
};

namespace weakref::testing {
namespace {

TEST_F(ReferencesTestCase, test_proxy_hash) {
  // A proxy is unhashable even when its referent is hashable.
  Strong<Hashable> obj = make<Hashable>();
  EXPECT_EQ(std::hash<Hashable>{}(*obj), 42U);
  EXPECT_FALSE(std::is_default_constructible_v<std::hash<proxy<Hashable>>>);
  // ... and when it is not (__hash__ = None).
  EXPECT_FALSE(std::is_default_constructible_v<std::hash<Unhashable>>);
  EXPECT_FALSE(std::is_default_constructible_v<std::hash<proxy<Unhashable>>>);
}

TEST_F(ReferencesTestCase, test_getweakrefcount) {
  Strong<C> o = make<C>();
  ref<C> ref1(o);
  ref<C> ref2(o, callback());
  EXPECT_EQ(getweakrefcount(o), 2U) << "got wrong number of weak reference objects";

  proxy<C> proxy1(o);
  proxy<C> proxy2(o, callback());
  EXPECT_EQ(getweakrefcount(o), 4U) << "got wrong number of weak reference objects";

  ref1.reset();
  ref2.reset();
  proxy1 = proxy<C>();
  proxy2 = proxy<C>();
  gc::collect();
  EXPECT_EQ(getweakrefcount(o), 0U)
      << "weak reference objects not unlinked from referent when discarded.";

  // an int cannot be weakly referenced (ref<int> does not compile)
  Strong<int> one = make<int>(1);
  EXPECT_EQ(getweakrefcount(one), 0U) << "got wrong number of weak reference objects for int";
}

TEST_F(ReferencesTestCase, test_getweakrefs) {
  Strong<C> o = make<C>();
  ref<C> ref1(o, callback());
  ref<C> ref2(o, callback());
  ref1.reset();
  gc::collect();
  std::vector<ref<>> got = getweakrefs(o);
  ASSERT_EQ(got.size(), 1U) << "list of refs does not match";
  EXPECT_TRUE(got[0].is(ref2)) << "list of refs does not match";

  o = make<C>();
  ref1 = ref<C>(o, callback());
  ref2 = ref<C>(o, callback());
  ref2.reset();
  gc::collect();
  got = getweakrefs(o);
  ASSERT_EQ(got.size(), 1U) << "list of refs does not match";
  EXPECT_TRUE(got[0].is(ref1)) << "list of refs does not match";

  ref1.reset();
  got.clear();
  gc::collect();
  EXPECT_TRUE(getweakrefs(o).empty()) << "list of refs not cleared";

  Strong<int> one = make<int>(1);
  EXPECT_TRUE(getweakrefs(one).empty()) << "list of refs does not match for int";
}

// A float subclass: p + 1.0 and the reflected 1.0 + p.
struct F : Counted {
  double value;
  explicit F(double v) : value(v) {}
  friend double operator+(const F& f, double x) { return f.value + x; }
  friend double operator+(double x, const F& f) { return x + f.value; }
};

TEST_F(ReferencesTestCase, test_newstyle_number_ops) {
  // The reflected form once crashed CPython.
  Strong<F> f = make<F>(2.0);
  proxy<F> p(f);
  EXPECT_EQ(*p + 1.0, 3.0);
  EXPECT_EQ(1.0 + *p, 3.0);
  f.reset();
  EXPECT_THROW((void)(1.0 + *p), ReferenceError);
}

TEST_F(ReferencesTestCase, test_callbacks_protected) {
  // SF bug #478534: a callback runs while an exception propagates (the
  // object dies during stack unwinding); the exception must come through
  // intact. In C++ a callback that throws then must not terminate the
  // program either: its exception goes to the unraisable hook.
  struct BogusError {};
  struct Fn : Counted {
    int operator()() const { return 0; }
  };
  std::unordered_map<ref<Fn>, int> data;
  auto remove = [&data](const ref<Fn>& k) { data.erase(k); };
  auto encapsulate = [&](bool callback_throws) {
    Strong<Fn> f = make<Fn>();
    if (callback_throws)
      data.emplace(ref<Fn>(f,
                           [remove](const ref<Fn>& k) {
                             remove(k);
                             throw std::runtime_error("from the callback");
                           }),
                   0);
    else
      data.emplace(ref<Fn>(f, remove), 0);
    throw BogusError{};
  };
  EXPECT_THROW(encapsulate(false), BogusError) << "exception not properly restored";
  EXPECT_THROW(encapsulate(false), BogusError) << "exception not properly restored";
  EXPECT_TRUE(data.empty());  // both callbacks ran during the unwinding
  UnraisableCapture capture;
  EXPECT_THROW(encapsulate(true), BogusError) << "exception not properly restored";
  EXPECT_TRUE(data.empty());
  EXPECT_EQ(capture.messages, std::vector<std::string>{"std::runtime_error: from the callback"});
}

TEST_F(ReferencesTestCase, test_sf_bug_840829) {
  // Weakref callbacks that collect while objects are being torn down.
  int calls = 0;
  auto collect_cb = [&calls](const ref<Node>&) {
    ++calls;
    gc::collect();
  };
  Strong<Node> c = make<Node>();
  ref<Node> wr(c, collect_cb);
  c.reset();
  EXPECT_EQ(calls, 1);
  wr.reset();

  Strong<Node> c1 = make<Node>();
  c1->a = make<Node>();  // c1.i
  wr = ref<Node>(c1->a, collect_cb);
  Strong<Node> c2 = make<Node>();
  c2->a = c1;
  c1.reset();  // still alive because c2 points to it
  c2.reset();  // c2 dies, then c1, then c1.i, whose callback collects
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(wr());
}

// The gc tests below hold their callbacks' "self" as a raw pointer: a C++
// closure is not traced, so a Strong captured by a callback would be an
// outside reference the collector cannot see (Python's weakref traverses its
// callback). The garbage objects hold each other in traced members.

TEST_F(ReferencesTestCase, test_callback_in_cycle) {
  // I holds both a strong and a weak reference (with a callback reading
  // I.J) to J; I, J and the "class" II are all cyclic garbage. I's weakref
  // is garbage too, so it is cleared without calling back -- the callback
  // would otherwise run on an object the collector is breaking up.
  struct J : Counted {
    Strong<J> self;  // J is in a self-cycle (as class objects are)
    void trace(gc::Visitor& v) { v(self); }
  };
  struct II : Counted {
    Strong<II> self;
    void trace(gc::Visitor& v) { v(self); }
  };
  struct Inst : Counted {
    Strong<Inst> me;  // Python: I -> I.wr -> its callback I.acallback -> I
    Strong<II> klass;
    Strong<J> j;
    ref<J> wr;
    void trace(gc::Visitor& v) { v(me, klass, j, wr); }
  };
  int calls = 0;
  Strong<J> j = make<J>();
  j->self = j;
  Strong<II> ii = make<II>();
  ii->self = ii;
  Strong<Inst> i = make<Inst>();
  i->me = i;
  i->klass = ii;
  i->j = j;
  Inst* raw = i.get();
  i->wr = ref<J>(j, [raw, &calls](const ref<J>&) {
    ++calls;
    (void)raw->j;  // self.J
  });
  ref<Inst> probe(i);
  i.reset();
  j.reset();
  ii.reset();
  EXPECT_EQ(gc::collect(), 3U);
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(probe());
}

struct OneWay : Counted {
  Strong<OneWay> me;
  Strong<Counted> c1;  // untyped slot: any object
  ref<Counted> wr;
  int* calls = nullptr;
  void cb(const ref<Counted>&) {
    ++*calls;
    (void)me, (void)c1, (void)wr;  // self.me, self.c1, self.wr
  }
  void trace(gc::Visitor& v) { v(me, c1, wr); }
};

template <class Target>
void check_callback_reachable_one_way() {
  // c1 is reachable from c2, not the other way round; c2's weakref to c1
  // (with a callback reading c2's members) is garbage with c2.
  int calls = 0;
  Strong<Target> c1 = make<Target>();
  Strong<OneWay> c2 = make<OneWay>();
  c2->calls = &calls;
  c2->me = c2;
  c2->c1 = c1;
  OneWay* self = c2.get();
  c2->wr = ref<Counted>(c1, [self](const ref<Counted>& r) { self->cb(r); });
  ref<OneWay> probe(c2);
  c1.reset();
  c2.reset();
  gc::collect();
  EXPECT_EQ(calls, 0);
  EXPECT_FALSE(probe());
}

TEST_F(ReferencesTestCase, test_callback_reachable_one_way) {
  check_callback_reachable_one_way<OneWay>();
}

TEST_F(ReferencesTestCase, test_callback_different_classes) {
  // As above, with c1 of another class (D).
  struct D : Counted {};
  check_callback_reachable_one_way<D>();
}

TEST_F(ReferencesTestCase, test_callback_in_cycle_resurrection) {
  // Two garbage objects with weakrefs to each other whose callbacks would
  // resurrect the other; the weakrefs are garbage, so they are cleared
  // without calling back. A weakref held from outside (wr, to the "class"
  // object the instances refer to) is not garbage: its callback runs.
  std::vector<std::string> alist;
  std::vector<Strong<Counted>> resurrected;
  struct Klass : Counted {
    Strong<Klass> self;  // classes are in self-cycles
    void trace(gc::Visitor& v) { v(self); }
  };
  struct Inst : Counted {
    int attribute;
    Strong<Klass> klass;
    Strong<Inst> c;
    ref<Inst> wr;
    explicit Inst(int value) : attribute(value) {}
    void trace(gc::Visitor& v) { v(klass, c, wr); }
  };
  Strong<Klass> klass = make<Klass>();
  klass->self = klass;
  Strong<Inst> c1 = make<Inst>(1), c2 = make<Inst>(2);
  c1->klass = c2->klass = klass;
  c1->c = c2;
  c2->c = c1;
  auto acallback = [&alist, &resurrected](Inst* self) {
    return [&alist, &resurrected, self](const ref<Inst>&) {
      alist.push_back("resurrected");
      resurrected.push_back(self->c);  // alist.append(self.c)
    };
  };
  c1->wr = ref<Inst>(c2, acallback(c1.get()));
  c2->wr = ref<Inst>(c1, acallback(c2.get()));
  ref<Klass> wr(klass, [&alist](const ref<Klass>&) { alist.push_back("C went away"); });

  c1.reset();
  c2.reset();
  klass.reset();
  EXPECT_EQ(alist, std::vector<std::string>{});  // del isn't enough to reclaim anything

  gc::collect();
  EXPECT_EQ(alist, std::vector<std::string>{"C went away"});
  EXPECT_FALSE(wr());
  EXPECT_TRUE(resurrected.empty());

  alist.clear();
  gc::collect();
  EXPECT_EQ(alist, std::vector<std::string>{});
}

TEST_F(ReferencesTestCase, test_callbacks_on_callback) {
  // Weakref callbacks *on* weakref callbacks. The bound method c.cb is an
  // object of its own (Bound, holding c); c's weakref to d calls it back,
  // d's weakref to it calls d.cb. All of c, d, c.cb and those weakrefs are
  // garbage: the garbage weakrefs are cleared without calling back, and only
  // external_wr, held from outside, calls back when c.cb is reclaimed.
  std::vector<std::string> alist;
  struct Inst;
  struct Bound : Counted {  // a bound method: holds its object
    Strong<Inst> self;
    std::vector<std::string>* alist;
    void operator()() const { alist->push_back("cb called"); }
    void trace(gc::Visitor& v) { v(self); }
  };
  struct Inst : Counted {
    Strong<Inst> other;
    Strong<Bound> cb;  // what holds the bound method (Python: the weakref's callback slot)
    ref<Inst> wr;
    ref<Bound> wr_cb;
    void trace(gc::Visitor& v) { v(other, cb, wr, wr_cb); }
  };
  Strong<Inst> c = make<Inst>(), d = make<Inst>();
  c->other = d;
  d->other = c;
  Strong<Bound> callback = make<Bound>();
  callback->self = c;
  callback->alist = &alist;
  Strong<Bound> d_cb = make<Bound>();
  d_cb->self = d;
  d_cb->alist = &alist;
  c->cb = callback;
  d->cb = d_cb;
  Bound* cb_raw = callback.get();
  Bound* d_cb_raw = d_cb.get();
  c->wr = ref<Inst>(d, [cb_raw](const ref<Inst>&) { (*cb_raw)(); });  // won't trigger
  d->wr_cb = ref<Bound>(callback, [d_cb_raw](const ref<Bound>&) { (*d_cb_raw)(); });  // ditto
  // (A named string: g++ 12 -O3 warns falsely, -Warray-bounds, on a
  // push_back of the literal here.)
  const std::string safe_called = "safe_callback called";
  ref<Bound> external_wr(callback, [&alist, &safe_called](const ref<Bound>&) {
    alist.push_back(safe_called);
  });  // but this will
  EXPECT_TRUE(external_wr() == callback);

  callback.reset();
  d_cb.reset();
  c.reset();
  d.reset();
  EXPECT_EQ(alist, std::vector<std::string>{});  // del isn't enough to clean up cycles
  gc::collect();
  EXPECT_EQ(alist, std::vector<std::string>{"safe_callback called"});
  EXPECT_FALSE(external_wr());

  alist.clear();
  gc::collect();
  EXPECT_EQ(alist, std::vector<std::string>{});
}

// The object the Python test's check_gc_during_creation makes.
struct GcA : Counted {
  Strong<GcA> a;
  ref<GcA> wr;
  proxy<GcA> wp;
  void trace(gc::Visitor& v) { v(a, wr, wp); }
};

// A callback whose construction (inside the weakref's creation) allocates
// traced objects with thresholds of 1 and collects: a collection in the
// middle of making a weakref, as CPython's allocation of the weakref object
// can trigger one.
struct CollectingCallback {
  int* collections;
  explicit CollectingCallback(int* c) : collections(c) {}
  CollectingCallback(const CollectingCallback& o) : collections(o.collections) { collect_now(); }
  CollectingCallback(CollectingCallback&& o) noexcept : collections(o.collections) {
    collect_now();
  }
  void collect_now() const noexcept {
    (void)make<GcA>();
    gc::collect();
    ++*collections;
  }
  void operator()(const ref<GcA>&) const {}
};

template <template <class> class Weak>
void ReferencesTestCase::check_gc_during_creation() {
  const std::array<long, 3> thresholds = gc::get_threshold();
  gc::set_threshold(1, 1, 1);
  gc::collect();
  Strong<GcA> referenced = make<GcA>();
  Strong<GcA> a = make<GcA>();
  a->a = a;
  if constexpr (std::is_same_v<Weak<GcA>, ref<GcA>>)
    a->wr = ref<GcA>(referenced);
  else
    a->wp = proxy<GcA>(referenced);
  ref<GcA> probe(a);
  // now make sure the object and the ref get labeled as cyclic trash:
  a = make<GcA>();
  EXPECT_TRUE(probe());
  int collections = 0;
  ref<GcA> r(referenced, CollectingCallback(&collections));
  gc::set_threshold(thresholds[0], thresholds[1], thresholds[2]);
  EXPECT_GE(collections, 1);
  EXPECT_FALSE(probe());  // the cycle (and its weakref) went during the creation
  // referenced's list of weakrefs is intact: just the new one.
  EXPECT_EQ(getweakrefcount(referenced), 1U);
  std::vector<ref<>> all = getweakrefs(referenced);
  ASSERT_EQ(all.size(), 1U);
  EXPECT_TRUE(all[0].is(r));
  EXPECT_TRUE(r() == referenced);
}

TEST_F(ReferencesTestCase, test_gc_during_ref_creation) { check_gc_during_creation<ref>(); }

TEST_F(ReferencesTestCase, test_gc_during_proxy_creation) { check_gc_during_creation<proxy>(); }

// Bug #1377858: a weakref made in the object's finalizer (__del__ is
// tp_finalize) to the dying object itself.
ref<Counted> ref_from_del;

TEST_F(ReferencesTestCase, test_ref_created_during_del) {
  struct Target : Counted {
    void tp_finalize() { ref_from_del = ref<Counted>(self(this)); }
  };
  { Strong<Target> w = make<Target>(); }
  std::ostringstream os;
  os << ref_from_del;
  EXPECT_THAT(os.str(), ::testing::MatchesRegex("<weakref at 0x[0-9a-f]+; dead>"));
  EXPECT_FALSE(ref_from_del());
  ref_from_del.reset();
}

TEST_F(ReferencesTestCase, test_equality) {
  // Alive weakrefs compare their referents (the Strong<T> handles r() gives:
  // the same object); dead weakrefs compare by identity. See
  // MAPPING.md: CPython compares alive referents with their own
  // __eq__, so two refs to distinct equal objects are equal there.
  Strong<Object> x = make<Object>(1), z = make<Object>(2);
  ref<Object> a(x);
  ref<Object> b(x, [](const ref<Object>&) {});  // another weakref object to x
  ref<Object> c(z);
  ref<Object> d(x);
  EXPECT_TRUE(a == b);
  EXPECT_FALSE(a != b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(a != c);
  EXPECT_TRUE(a == d);
  EXPECT_FALSE(a != d);
  // A ref and an object are not comparable (Python: a == x is False).
  EXPECT_FALSE((EqualityComparable<ref<Object>, Strong<Object>>));
  x.reset();
  z.reset();
  gc::collect();
  for (const ref<Object>* r : {&a, &b, &c}) EXPECT_FALSE((*r)());  // sanity check
  // Dead weakrefs compare by identity.
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a != b);
  EXPECT_FALSE(a == c);
  EXPECT_TRUE(a != c);
  EXPECT_EQ(a == d, a.is(d));
  EXPECT_EQ(a != d, !a.is(d));
}

TEST_F(ReferencesTestCase, test_ordering) {
  // weakrefs cannot be ordered, even if the underlying objects can.
  Strong<Object> x = make<Object>(1), y = make<Object>(1);
  EXPECT_TRUE(*x <= *y);
  EXPECT_TRUE(HasLess<Object>);
  // alive or dead: it is a property of the type
  EXPECT_FALSE(HasLess<ref<Object>>);
  EXPECT_FALSE(HasGreater<ref<Object>>);
  EXPECT_FALSE(HasLessEqual<ref<Object>>);
  EXPECT_FALSE(HasGreaterEqual<ref<Object>>);
}

TEST_F(ReferencesTestCase, test_hashing) {
  // Alive weakrefs hash as their referent (in C++ the Strong<T> handle, whose
  // hash is by identity); dead weakrefs keep that hash. A dead weakref never
  // hashed while alive is hashable too -- the documented difference from
  // CPython's TypeError (ref.hpp).
  Strong<Object> x = make<Object>(42), y = make<Object>(42);
  ref<Object> a(x);
  ref<Object> b(y);
  const std::size_t hx = std::hash<Strong<Object>>{}(x);
  const std::size_t hy = std::hash<Strong<Object>>{}(y);
  EXPECT_EQ(std::hash<ref<Object>>{}(a), hx);
  x.reset();
  y.reset();
  gc::collect();
  EXPECT_EQ(std::hash<ref<Object>>{}(a), hx);
  EXPECT_EQ(std::hash<ref<Object>>{}(b), hy);
}

TEST_F(ReferencesTestCase, test_trashcan_16602) {
  // Issue #16602: a weakref whose target is deep in a long deallocation chain
  // (past the trashcan's depth of 50) must never hand out the target once its
  // count has dropped to 0. As in the Python test, a weak-keyed map holds each
  // node's child, and each child's callback on its parent locks a weakref to
  // the child itself.
  struct Node16602 : Counted {
    ref<Node16602> wparent;
  };
  struct Entry {
    ref<Node16602> key;
    Strong<Node16602> value;
  };
  std::map<const Node16602*, Entry> d;     // WeakKeyDictionary
  std::vector<std::pair<int, bool>> seen;  // (child index, wself() was alive)

  auto make_child = [&seen](const Strong<Node16602>& parent, int index) {
    Strong<Node16602> self = make<Node16602>();
    ref<Node16602> wself(self);
    self->wparent = ref<Node16602>(parent, [&seen, wself, index](const ref<Node16602>&) {
      Strong<Node16602> o = wself();
      seen.emplace_back(index, static_cast<bool>(o));
    });
    return self;
  };
  auto set_item = [&d](const Strong<Node16602>& key, Strong<Node16602> value) {
    const Node16602* k = key.get();
    ref<Node16602> kr(key, [&d, k](const ref<Node16602>&) {
      auto node = d.extract(k);  // the entry (and the value) go after this line
      (void)node;
    });
    d.emplace(k, Entry{std::move(kr), std::move(value)});
  };

  Strong<Node16602> root = make<Node16602>();
  Strong<Node16602> c = root;
  for (int n = 1; n <= 100; ++n) {
    Strong<Node16602> child = make_child(c, n);
    set_item(c, child);  // d[c] = c = C(c)
    c = child;
  }
  root.reset();
  gc::collect();
  // Every callback ran; only the last child, still held by c, was alive.
  ASSERT_EQ(seen.size(), 100U);
  for (const auto& [index, alive] : seen) EXPECT_EQ(alive, index == 100) << "child " << index;
  EXPECT_TRUE(d.empty());
  c.reset();
}

TEST_F(ReferencesTestCase, test_callback_attribute) {
  // __callback__ is not None exactly when the ref has a callback.
  Strong<Object> x = make<Object>(1);
  ref<Object> ref1(x, [](const ref<Object>&) {});
  EXPECT_TRUE(ref1.has_callback());
  ref<Object> ref2(x);
  EXPECT_FALSE(ref2.has_callback());
}

TEST_F(ReferencesTestCase, test_callback_attribute_after_deletion) {
  Strong<Object> x = make<Object>(1);
  ref<Object> r(x, callback());
  EXPECT_TRUE(r.has_callback());
  x.reset();
  gc::collect();
  EXPECT_FALSE(r.has_callback());
}

TEST_F(ReferencesTestCase, test_callback_gcs) {
  // An object with a finalizer (__del__ is tp_finalize) whose weakref
  // callback collects.
  struct ObjectWithDel : Counted {
    int* finalized;
    explicit ObjectWithDel(int* f) : finalized(f) {}
    void tp_finalize() { ++*finalized; }
  };
  int finalized = 0, calls = 0;
  Strong<ObjectWithDel> x = make<ObjectWithDel>(&finalized);
  ref<ObjectWithDel> ref1(x, [&calls](const ref<ObjectWithDel>&) {
    ++calls;
    gc::collect();
  });
  x.reset();
  gc::collect();
  EXPECT_EQ(finalized, 1);
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(ref1());
}

}  // namespace
}  // namespace weakref::testing
