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
// Gives back the memory that other threads freed into the pools of exited
// threads, if any is pending (cheap when none is). The collector calls it
// after each collection, which is when most of that memory is freed.
void pool_trim_exited() noexcept;

}  // namespace weakref::detail
