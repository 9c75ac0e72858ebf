// The failure path of WEAKREF_DCHECK (weakref/detail/dcheck.hpp): one line on
// stderr, then abort. Always in the library, whatever WEAKREF_DCHECKS is, so
// that code built with the checks on links against any build of it.
#include "weakref/detail/dcheck.hpp"

#include <cstdio>
#include <cstdlib>

namespace weakref::detail {

void dcheck_failed(const char* file, int line, const char* expr, const char* msg) noexcept {
  // stdio, not iostreams: no allocation, usable in a death, at exit, or
  // with memory exhausted.
  std::fprintf(stderr, "%s:%d: WEAKREF_DCHECK(%s) failed: %s\n", file, line, expr, msg);
  std::fflush(stderr);
  std::abort();
}

bool dchecks_enabled_in_library() noexcept { return WEAKREF_DCHECKS != 0; }

}  // namespace weakref::detail
