// The conformance replay: runs a scenario (.scn, ../shared/conformance/SPEC.md)
// on the weakref library and prints the trace oracle.py prints under CPython.
//
//     std::vector<Op> ops = parse(text);        // throws ScenarioError
//     Session s(&std::cout);
//     int status = s.run(ops, OnExit::run_exitfunc);   // throws ScenarioError
//
// Used by the weakref-replay program (main.cpp), the libFuzzer target
// (fuzz_replay.cpp) and the tests (test_replay.cpp).
#pragma once

#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace weakref::replay {

// A malformed scenario or an operand of the wrong kind. what() is oracle.py's
// text after "error: " ("line N: ...").
class ScenarioError : public std::runtime_error {
 public:
  ScenarioError(int line, const std::string& message)
      : std::runtime_error("line " + std::to_string(line) + ": " + message), line_(line) {}
  int line() const noexcept { return line_; }

 private:
  int line_;
};

// One operation: its 1-based line number and its tokens (UTF-8).
struct Op {
  int line;
  std::vector<std::string> tokens;
};

// The operations of a scenario's text up to and including the first `exit`
// (later lines are not looked at), checked as oracle.py checks them. Lines
// and tokens are split as Python's str.splitlines() and str.split() do.
// Throws ScenarioError for the first malformed line, or for bytes that are
// not UTF-8.
std::vector<Op> parse(std::string_view text);

// Python's repr() of a UTF-8 string, as oracle.py's messages print tokens.
std::string py_repr(std::string_view utf8);

// What the `exit` op does: finalize::exitfunc() (the program), or nothing
// but end the run (the fuzz target, whose process must stay usable).
enum class OnExit { run_exitfunc, end_of_input };

class World;

// One run of a scenario: its namespace of variables, its trace output and
// its unraisable hook (installed while the session lives).
class Session {
 public:
  // Trace lines go to `out` (nothing is printed when null), flushed per line.
  explicit Session(std::ostream* out);
  // Silently drops every variable and collects until nothing is left; then
  // every object of the session is dead (live_objects() == 0) unless a
  // library bug keeps one.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs the ops in order; returns 0, or 3 when something unexpected
  // happened (an exception from the library, a foreign exception at the
  // unraisable hook: described on `err`). Throws ScenarioError for an
  // operand of the wrong kind (the trace stops there).
  int run(const std::vector<Op>& ops, OnExit on_exit, std::ostream& err);

  // Scenario objects alive in the process (every session).
  static long live_objects() noexcept;

 private:
  std::unique_ptr<World> world_;
};

}  // namespace weakref::replay
