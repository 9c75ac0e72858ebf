// Ports of CPython 3.11's Lib/test/test_weakref.py, class FinalizeTestCase.
// Python's f.peek() / f.detach() tuple (obj, func, args, kwargs) is
// finalize::info {object, func}, func having the arguments bound; keyword
// arguments are positional in C++. MAPPING.md lists every method.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "support.hpp"

namespace weakref::testing {
namespace {

// FinalizeTestCase.A
struct A {
  A() { ++g_live; }
  A(const A&) = delete;
  A& operator=(const A&) = delete;
  ~A() { --g_live; }
};

class FinalizeTestCase : public Test {};

TEST_F(FinalizeTestCase, test_finalize) {
  std::vector<int> res;
  auto add = [&res](int x, int y, int z) {
    res.push_back(x + y + z);
    return x + y + z;
  };
  Strong<A> a = make<A>();

  {
    finalize f(a, add, 67, 43, 89);  // Python passes z=89 by keyword
    EXPECT_TRUE(f.alive());
    std::optional<finalize::info> info = f.peek();
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->object == a);
    info->func();  // add with its arguments bound: add(67, 43, 89)
    EXPECT_EQ(res, std::vector<int>{199});
    res.clear();
    info.reset();
    EXPECT_TRUE(f());  // Python: 199, the result of func; C++: func ran
    EXPECT_FALSE(f());
    EXPECT_FALSE(f());
    EXPECT_FALSE(f.peek());
    EXPECT_FALSE(f.detach());
    EXPECT_FALSE(f.alive());
    EXPECT_EQ(res, std::vector<int>{199});
  }

  res.clear();
  {
    finalize f(a, add, 67, 43, 89);
    std::optional<finalize::info> info = f.peek();
    ASSERT_TRUE(info);
    EXPECT_TRUE(info->object == a);
    std::optional<finalize::info> detached = f.detach();
    ASSERT_TRUE(detached);
    EXPECT_TRUE(detached->object == a);
    EXPECT_FALSE(f());
    EXPECT_FALSE(f());
    EXPECT_FALSE(f.peek());
    EXPECT_FALSE(f.detach());
    EXPECT_FALSE(f.alive());
    EXPECT_EQ(res, std::vector<int>{});
    detached->func();  // what detach() gave back is add(67, 43, 89)
    EXPECT_EQ(res, std::vector<int>{199});
  }

  res.clear();
  {
    finalize f(a, add, 67, 43, 89);  // Python: all three by keyword
    a.reset();
    EXPECT_FALSE(f());
    EXPECT_FALSE(f());
    EXPECT_FALSE(f.peek());
    EXPECT_FALSE(f.detach());
    EXPECT_FALSE(f.alive());
    EXPECT_EQ(res, std::vector<int>{199});
  }
}

TEST_F(FinalizeTestCase, test_arg_errors) {
  // Arguments that look like finalize's own parameters -- a function and an
  // object (Python: the keywords func=3, obj=4) -- are func's arguments.
  std::vector<std::tuple<int, int, int, bool>> res;
  Strong<A> a = make<A>();
  Strong<A> other = make<A>();
  auto fin = [&res](int x, int y, const std::function<int()>& func, const Strong<A>& obj) {
    res.emplace_back(x, y, func(), static_cast<bool>(obj));
  };
  finalize f(a, fin, 1, 2, std::function<int()>([] { return 3; }), other);
  std::optional<finalize::info> info = f.peek();
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->object == a);
  info.reset();
  EXPECT_TRUE(f());
  EXPECT_EQ(res, (std::vector<std::tuple<int, int, int, bool>>{{1, 2, 3, true}}));

  // Missing arguments do not compile: no function, or too few arguments
  // for it (the latter with the library's own message:
  // tests/compile_fail/finalize_missing_argument.cpp).
  EXPECT_FALSE((std::is_constructible_v<finalize, const Strong<A>&>));
  // weakref.finalize() without arguments: in C++ the documented empty handle.
  finalize empty;
  EXPECT_FALSE(empty.alive());
  EXPECT_FALSE(empty());
}

TEST_F(FinalizeTestCase, test_order) {
  Strong<A> a = make<A>();
  std::vector<std::string> res;
  auto append = [&res](const std::string& s) { res.push_back(s); };

  std::optional<finalize> f1(std::in_place, a, append, "f1");
  finalize f2(a, append, "f2");
  finalize f3(a, append, "f3");
  std::optional<finalize> f4(std::in_place, a, append, "f4");
  finalize f5(a, append, "f5");

  // make sure finalizers can keep themselves alive
  f1.reset();
  f4.reset();

  EXPECT_TRUE(f2.alive());
  EXPECT_TRUE(f3.alive());
  EXPECT_TRUE(f5.alive());

  EXPECT_TRUE(f5.detach());
  EXPECT_FALSE(f5.alive());

  f5();  // nothing because previously unregistered
  res.push_back("A");
  f3();  // => res.push_back("f3")
  EXPECT_FALSE(f3.alive());
  res.push_back("B");
  f3();  // nothing because previously called
  res.push_back("C");
  a.reset();
  // => res.push_back("f4")
  // => res.push_back("f2")
  // => res.push_back("f1")
  EXPECT_FALSE(f2.alive());
  res.push_back("D");
  f2();  // nothing because previously called by the death

  const std::vector<std::string> expected{"A", "f3", "B", "C", "f4", "f2", "f1", "D"};
  EXPECT_EQ(res, expected);
}

TEST_F(FinalizeTestCase, test_all_freed) {
  // Once the finalizer has run, it lets go of its function (and of what the
  // function holds). Python also checks that the finalize object itself is
  // freed: here its state is owned by the library, which LeakSanitizer
  // checks in the ASan build.
  struct Token {
    Token() { ++g_live; }
    ~Token() { --g_live; }
  };
  Strong<A> a = make<A>();
  std::vector<int> res;
  Strong<Token> callback = make<Token>();  // the function object
  ref<Token> wr_callback(callback);
  std::optional<finalize> f(std::in_place, a, [&res, callback] { res.push_back(123); });

  callback.reset();
  f.reset();
  EXPECT_TRUE(wr_callback());
  EXPECT_EQ(getweakrefcount(a), 1U);  // the finalizer lives on (wr_f() is not None)

  a.reset();
  EXPECT_FALSE(wr_callback());
  EXPECT_EQ(res, std::vector<int>{123});
}

// Python's _global_var: a global the finalizers' arguments copy.
const std::string g_global_var = "foobar";

struct ZeroDivisionError : std::runtime_error {
  ZeroDivisionError() : std::runtime_error("division by zero") {}
};

void print_line(const std::string& a, const std::string& b = "") {
  std::fprintf(stderr, "%s%s%s\n", a.c_str(), b.empty() ? "" : " ", b.c_str());
}

// FinalizeTestCase.run_in_child: finalizers on an object that lives until
// the process exits (std::exit does not unwind), run by the handler the
// library registers with std::atexit.
[[noreturn]] void run_in_child() {
  Strong<A> cls = make<A>();  // cls should stay alive till atexit callbacks run
  auto print1 = [](const std::string& s) { print_line(s); };
  auto print2 = [](const std::string& s, const std::string& v) { print_line(s, v); };
  auto error = [&cls, print1] {
    // Create an atexit finalizer from inside a finalizer called at exit.
    // This should be the next to be run.
    finalize g1(cls, print1, "g1");
    print_line("f3 error");
    throw ZeroDivisionError();
  };
  finalize f1(cls, print2, "f1", g_global_var);
  finalize f2(cls, print2, "f2", g_global_var);
  finalize f3(cls, error);
  finalize f4(cls, print2, "f4", g_global_var);

  if (!f1.atexit()) std::_Exit(3);
  f2.atexit(false);
  if (!f3.atexit() || !f4.atexit()) std::_Exit(3);
  std::exit(0);
}

TEST_F(FinalizeTestCase, test_atexit) {
  // The exception of f3 goes to the unraisable hook, which prints it on
  // stderr (Python: sys.excepthook) between f3's line and g1's.
  EXPECT_EXIT(run_in_child(), ::testing::ExitedWithCode(0),
              "f4 foobar\nf3 error\n(.|\n)*ZeroDivisionError: division by zero\ng1\nf1 foobar\n$");
}

}  // namespace
}  // namespace weakref::testing
