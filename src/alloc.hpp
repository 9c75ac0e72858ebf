// The small-block allocator (see src/alloc.cpp for its design).
#pragma once

#include <cstddef>

#include "weakref/detail/config.hpp"
#include "weakref/detail/object.hpp"  // pool_allocate, pool_deallocate, pools_enabled

// The thread-locals of the hot paths (the allocator's pools, the spare
// side-table block, the death queue, the fork gate's record) use the
// initial-exec TLS model: the library is compiled position-independent,
// where the default model reaches
// a thread-local through a call to __tls_get_addr. The linker turns that
// call into two instructions in an executable, but the compiler has
// already treated it as a call, so every function that touches one saved
// registers and built a frame for it (pool_deallocate, free_side, die, ...).
// Initial-exec needs the variables in the static TLS block: true for an
// executable and for the shared libraries it loads at start; a shared
// library loaded later with dlopen takes them from glibc's surplus, which
// these few dozen bytes fit.
// (WEAKREF_TLS_INITIAL_EXEC is defined in weakref/detail/config.hpp.)

namespace weakref::detail {

// Blocks up to this size come from per-thread pages; larger ones from
// operator new. The same size must be given to pool_deallocate.
inline constexpr std::size_t kMaxPooledSize = 512;

// Gives back the memory that other threads freed into the pools of exited
// threads, if any is pending (cheap when none is). The collector calls it
// after each collection, which is when most of that memory is freed.
void pool_trim_exited() noexcept;

}  // namespace weakref::detail
