// Diagnostics of the library's small-block allocator (src/alloc.cpp), for
// benchmarks and tests; not part of the public API.
#pragma once

#include <cstddef>

#include "config.hpp"

namespace weakref::detail {

// Bytes of 64 KiB pages the calling thread's pools hold (pages with blocks
// in use, plus at most one spare page per size class): the memory the
// library's objects, side tables and weakref objects occupy, as CPython's
// sys.getallocatedblocks() is for pymalloc. Chunks reserved but not yet
// carved into pages are not counted (they are never touched).
WEAKREF_API std::size_t pool_committed_bytes() noexcept;

// Bytes of 2 MiB chunks the allocator holds from the system, all threads
// together (live and exited): what the library's small blocks cost the
// process. 0 under AddressSanitizer (blocks come from operator new).
WEAKREF_API std::size_t pool_system_bytes() noexcept;

}  // namespace weakref::detail
