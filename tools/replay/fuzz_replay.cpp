// libFuzzer target: arbitrary bytes through the replay's parser and
// interpreter (build: the `fuzz` preset, docs/conformance.md).
//
// Each input runs in a fresh Session that prints nothing. `exit` only ends
// the input (finalize::exitfunc() would stop every finalizer of the process
// for good). When the Session is destroyed every variable is dropped and the
// collector runs until nothing dies: then no scenario object may be left
// alive, and the library must not have thrown anything unexpected.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <weakref/gc.hpp>

#include "replay.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace weakref::replay;
  std::vector<Op> ops;
  try {
    ops = parse(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const ScenarioError&) {
    return 0;
  }
  std::ostringstream err;
  int status = 0;
  {
    Session session(nullptr);
    try {
      status = session.run(ops, OnExit::end_of_input, err);
    } catch (const ScenarioError&) {
      status = 2;
    }
  }
  if (status == 3) {
    std::fprintf(stderr, "fuzz_replay: unexpected exception: %s\n", err.str().c_str());
    std::abort();
  }
  if (const long live = Session::live_objects(); live != 0) {
    std::fprintf(stderr, "fuzz_replay: %ld scenario object(s) still alive after the run\n", live);
    std::abort();
  }
  return 0;
}
