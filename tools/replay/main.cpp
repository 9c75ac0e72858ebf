// weakref-replay FILE.scn: runs a conformance scenario on the library and
// prints its trace (../shared/conformance/SPEC.md), as oracle.py does under
// CPython: same lines, same error messages, same exit status (0; 2 for a
// malformed scenario or an operand of the wrong kind; 3 when something
// unexpected happened).
//
// The process ends with std::_Exit, as oracle.py ends with os._exit: no
// static destructor and no std::atexit handler (the library's own
// finalize::exitfunc) may print after the trace.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "replay.hpp"

namespace {

[[noreturn]] void finish(int status) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(status);
}

// The file's bytes, or Python's OSError text ("[Errno 2] No such file or
// directory: 'x.scn'").
bool read_file(const char* path, std::string& text, std::string& error) {
  errno = 0;
  std::FILE* f = std::fopen(path, "rb");
  char buf[65536];
  std::size_t n = 0;
  if (f) {
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    if (!std::ferror(f)) {
      std::fclose(f);
      return true;
    }
  }
  const int e = errno ? errno : EIO;
  if (f) std::fclose(f);
  error = "[Errno " + std::to_string(e) + "] " + std::strerror(e) + ": " +
          weakref::replay::py_repr(path);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace weakref::replay;
  if (argc != 2) {
    std::cerr << "usage: weakref-replay FILE.scn\n";
    finish(2);
  }
  std::string text, error;
  if (!read_file(argv[1], text, error)) {
    std::cerr << "error: " << error << '\n';
    finish(2);
  }
  std::vector<Op> ops;
  try {
    ops = parse(text);
  } catch (const ScenarioError& e) {
    std::cerr << "error: " << e.what() << '\n';
    finish(2);
  }
  // Never destroyed: finish() ends the process with the scenario's world as
  // it is, as oracle.py does.
  auto* session = new Session(&std::cout);
  try {
    finish(session->run(ops, OnExit::run_exitfunc, std::cerr));
  } catch (const ScenarioError& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << '\n';
    finish(2);
  }
}
