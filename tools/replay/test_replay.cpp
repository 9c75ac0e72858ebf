// The replay library: the parser against oracle.py's lexical rules and
// messages, and the Session's trace, error and teardown contracts (what the
// weakref-replay program and the fuzz target rely on). The scenario traces
// themselves are checked against CPython by the conformance.* tests.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>
#include <weakref/finalize.hpp>
#include <weakref/gc.hpp>
#include <weakref/unraisable.hpp>

#include "replay.hpp"

namespace weakref::replay {
namespace {

std::vector<int> lines_of(const std::vector<Op>& ops) {
  std::vector<int> v;
  for (const Op& op : ops) v.push_back(op.line);
  return v;
}

std::string parse_error(std::string_view text) {
  try {
    parse(text);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "(no error)";
}

// Runs a scenario in a fresh session; returns the trace (and the status).
std::string trace(std::string_view text, int* status = nullptr) {
  std::ostringstream out, err;
  int s;
  {
    Session session(&out);
    s = session.run(parse(text), OnExit::end_of_input, err);
  }
  if (status) *status = s;
  return out.str();
}

TEST(ReplayParse, LinesCountAsPythonSplitlinesCountsThem) {
  // \r\n is one line end; \r, \f, \v, \x1c-\x1e, U+0085, U+2028, U+2029 end
  // lines too; blank and comment lines count.
  auto ops = parse(
      "new A\r\nnew B\rnew C\fnew D\vnew E\x1cnew F\n\n# c\nnew G\xc2\x85new H\xe2\x80\xa8new I");
  EXPECT_EQ(lines_of(ops), (std::vector<int>{1, 2, 3, 4, 5, 6, 9, 10, 11}));
  EXPECT_EQ(ops.back().tokens, (std::vector<std::string>{"new", "I"}));
}

TEST(ReplayParse, TokensSplitAtEveryPythonWhitespaceAndCommentsCutAnywhere) {
  auto ops = parse("ref\tr\xc2\xa0X\xe3\x80\x80"
                   "cb#comment\nnew B#x y\n   \t\n");
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].tokens, (std::vector<std::string>{"ref", "r", "X", "cb"}));
  EXPECT_EQ(ops[1].tokens, (std::vector<std::string>{"new", "B"}));
}

TEST(ReplayParse, StopsAtTheFirstExitWithoutLookingFurther) {
  auto ops = parse("new A\nexit\nthis is not an op\n");
  EXPECT_EQ(lines_of(ops), (std::vector<int>{1, 2}));
}

TEST(ReplayParse, MessagesAreOraclePys) {
  EXPECT_EQ(parse_error("new A\nfoo A"), "line 2: unknown operation 'foo'");
  EXPECT_EQ(parse_error("new"), "line 1: new takes 1 operand(s), got 0");
  EXPECT_EQ(parse_error("ref r A cb x"), "line 1: ref takes 2 or 3 operand(s), got 4");
  EXPECT_EQ(parse_error("collect now"), "line 1: collect takes 0 operand(s), got 1");
  EXPECT_EQ(parse_error("new 9"), "line 1: bad operand '9' for new");
  EXPECT_EQ(parse_error("set A.ab B"), "line 1: bad operand 'A.ab' for set");
  EXPECT_EQ(parse_error("set A.a -"), "(no error)");
  EXPECT_EQ(parse_error("setref A.a -"), "line 1: bad operand '-' for setref");
  EXPECT_EQ(parse_error("fin.atexit f yes"), "line 1: bad operand 'yes' for fin.atexit");
  EXPECT_EQ(parse_error("ref r A cb:del:1"), "line 1: bad operand 'cb:del:1' for ref");
  EXPECT_EQ(parse_error("ref r A cb:del:x_1"), "(no error)");
}

TEST(ReplayParse, BadBytesAreAnErrorOnTheirLine) {
  EXPECT_EQ(parse_error("new A\nnew \xff"),
            "line 2: 'utf-8' codec can't decode byte 0xff in position 10");
  EXPECT_EQ(parse_error("new A\n\xed\xa0\x80"),  // a surrogate
            "line 2: 'utf-8' codec can't decode byte 0xed in position 6");
  EXPECT_EQ(parse_error("\xc0\x80"),  // overlong
            "line 1: 'utf-8' codec can't decode byte 0xc0 in position 0");
}

TEST(ReplayParse, ReprIsPythons) {
  EXPECT_EQ(py_repr("abc"), "'abc'");
  EXPECT_EQ(py_repr("it's"), "\"it's\"");
  EXPECT_EQ(py_repr("a'b\"c"), "'a\\'b\"c'");
  EXPECT_EQ(py_repr("a\\b"), "'a\\\\b'");
  EXPECT_EQ(py_repr("\x01\x7f\t"), "'\\x01\\x7f\\t'");
  EXPECT_EQ(py_repr("n\xc3\xa9"), "'n\xc3\xa9'");                // printable: kept
  EXPECT_EQ(py_repr("\xc2\xad"), "'\\xad'");                     // soft hyphen (Cf)
  EXPECT_EQ(py_repr("\xef\xbb\xbf"), "'\\ufeff'");               // BOM (Cf)
  EXPECT_EQ(py_repr("\xf3\xa0\x80\x81"), "'\\U000e0001'");       // language tag
  EXPECT_EQ(py_repr("\xf0\x9f\x80\x80"), "'\xf0\x9f\x80\x80'");  // U+1F000, printable
}

TEST(ReplaySession, PrintsLinesOfTheOpRunningWithResultsAfterTheOperandsAreDropped) {
  // `ref A A cb`: the op holds A until its call returns, so A dies after it,
  // on the same line, before the (absent) result.
  EXPECT_EQ(trace("new A\nref A A cb\nget A\n"), "2: cb A A\n3: get A -> None\n");
  EXPECT_EQ(trace("new A\n\nget nope\nsame A A\n"),
            "3: get nope -> unbound\n4: same A A -> True\n");
}

TEST(ReplaySession, WrongKindThrowsAfterTheEarlierLinesArePrinted) {
  std::ostringstream out, err;
  Session session(&out);
  try {
    session.run(parse("new A\ncount A\nget A\ncount A\n"), OnExit::end_of_input, err);
    FAIL() << "no ScenarioError";
  } catch (const ScenarioError& e) {
    EXPECT_STREQ(e.what(), "line 3: A is not a ref");
    EXPECT_EQ(e.line(), 3);
  }
  EXPECT_EQ(out.str(), "2: count A -> 0\n");
}

TEST(ReplaySession, CallbackRaiseReachesTheHookAsOneLine) {
  EXPECT_EQ(trace("new A\nref r A cb:raise\nfin f A cb:raise\nlet q r\ndel r\ndel A\n"),
            "6: fin f A\n6: unraisable f A\n6: cb r A\n6: unraisable r A\n");
}

TEST(ReplaySession, RestoresTheUnraisableHook) {
  bool called = false;
  UnraisableHook previous = set_unraisable_hook([&](const UnraisableInfo&) { called = true; });
  trace("new A\nref r A cb:raise\ndel A\n");
  EXPECT_FALSE(called);  // the session's hook got it
  write_unraisable(std::make_exception_ptr(std::runtime_error("x")), "", "");
  EXPECT_TRUE(called);
  set_unraisable_hook(previous);
}

TEST(ReplaySession, TeardownKillsEverythingSilentlyEvenCyclesAndCallbackChains) {
  int status = -1;
  // Cycles, a finalizer whose callback collects, a callback unbinding names
  // during the teardown, a container iterated and a weakref held in a slot.
  const std::string out =
      trace("new A\nnew B\nset A.a B\nset B.a A\nfin f A cb:collect\nref r B cb:del:C\nnew C\n"
            "set C.b C\nwset S\nwset.add S C\nsetref C.c r\nwkd K\nwkd.set K A v\n",
            &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "");
  EXPECT_EQ(Session::live_objects(), 0);
}

TEST(ReplaySession, ExitAsEndOfInputLeavesFinalizersRunning) {
  // OnExit::end_of_input never calls finalize::exitfunc(): finalizers of
  // later sessions (and of this process) still run.
  EXPECT_EQ(trace("new A\nfin f A\nexit\ndel A\n"), "");
  EXPECT_EQ(trace("new A\nfin f A\ndel A\n"), "3: fin f A\n");
}

TEST(ReplaySession, EveryOperationOfTheSpecRuns) {
  // One line per operation of SPEC.md (the traces are CPython's: see
  // tests/conformance for the comparisons).
  const char* scenario =
      "new A\nnew B\nlet C A\nset A.a B\nsame A C\nref r A\nproxy p A\nwm m A\nsetref B.a r\n"
      "get r\nuse p\nwm.call m\neq r r\ncount A\nrefs A\nfin f A\nfin.alive f\nfin.peek f\n"
      "fin.atexit f 0\nfin.detach f\nfin.call f\nwvd D\nwvd.set D k A\nwvd.get D k\n"
      "wvd.has D k\nwvd.setdefault D j B\nwvd.pop D j\nwvd.del D j\nwvd.len D\nwvd.keys D\n"
      "wvd.items D\nwvd.iterdel D C\nwvd.clear D\nwkd K\nwkd.set K A v\nwkd.get K A\n"
      "wkd.has K A\nwkd.pop K A\nwkd.del K A\nwkd.len K\nwkd.keys K\nwkd.items K\n"
      "wkd.iterdel K C\nwkd.clear K\nwset S\nwset.add S A\nwset.has S A\nwset.discard S B\n"
      "wset.remove S B\nwset.len S\nwset.items S\nwset.union U S S\nwset.inter I S U\n"
      "wset.diff X S U\nwset.symdiff Y S U\nwset.le S U\nwset.eq S U\nwset.disjoint S X\n"
      "wset.iterdel S nope\nwset.clear S\ndel B\ncollect\nexit\n";
  const std::string expected =
      "5: same A C -> True\n10: get r -> A\n11: use p -> A\n12: wm.call m -> A\n"
      "13: eq r r -> True\n14: count A -> 3\n15: refs A -> [m p r]\n"
      "17: fin.alive f -> True\n18: fin.peek f -> A\n20: fin.detach f -> A\n"
      "24: wvd.get D k -> A\n25: wvd.has D k -> True\n26: wvd.setdefault D j B -> B\n"
      "27: wvd.pop D j -> B\n28: wvd.del D j -> KeyError\n29: wvd.len D -> 1\n"
      "30: wvd.keys D -> [k]\n31: wvd.items D -> [k=A]\n32: wvd.iterdel D C -> ok\n"
      "36: wkd.get K A -> v\n37: wkd.has K A -> True\n38: wkd.pop K A -> v\n"
      "39: wkd.del K A -> KeyError\n40: wkd.len K -> 0\n41: wkd.keys K -> []\n"
      "42: wkd.items K -> []\n43: wkd.iterdel K C -> ok\n47: wset.has S A -> True\n"
      "49: wset.remove S B -> KeyError\n50: wset.len S -> 1\n51: wset.items S -> [A]\n"
      "56: wset.le S U -> True\n57: wset.eq S U -> True\n58: wset.disjoint S X -> True\n"
      "59: wset.iterdel S nope -> ok\n62: collect -> 0\n";
  EXPECT_EQ(trace(scenario), expected);
}

}  // namespace
}  // namespace weakref::replay
