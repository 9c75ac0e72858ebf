// The small-block allocator (see src/alloc.cpp for its design).
#pragma once

#include <cstddef>

namespace weakref::detail {

// Blocks up to this size come from per-thread pages; larger ones from
// operator new. The same size must be given to pool_deallocate.
inline constexpr std::size_t kMaxPooledSize = 512;

void* pool_allocate(std::size_t size);
// False when every block goes to operator new instead: a memory tool
// (AddressSanitizer, LeakSanitizer, valgrind) watches the process, or
// WEAKREF_ALLOCATOR=system (see "Routing" in src/alloc.cpp).
bool pools_enabled() noexcept;
void pool_deallocate(void* block, std::size_t size) noexcept;

}  // namespace weakref::detail
