// Allocation-failure injection, for tests: "the N-th allocation fails".
// Built into the library with the CMake option WEAKREF_FAULT_INJECTION (ON in
// the asan and tsan presets, OFF by default); without it every function
// here exists and does nothing (built_in() says which).
//
// The library counts one allocation point at each of its own allocations
// that can fail (a block of the small-block allocator: objects, side tables,
// weakref objects; a 2 MiB chunk of it); a test that replaces the global
// operator new calls should_fail() from it too, so that every std container,
// std::function and shared_ptr the library (or the test) allocates counts as
// well. A sweep test runs a scenario with fail_at(1), fail_at(2), ... until
// one completes without reaching its failure point.
//
// The state is per thread: arming it on one thread makes only that thread's
// allocations fail.
#pragma once

#include <cstdint>

#include "config.hpp"

namespace weakref::detail::fault {

// Whether the hook is built in.
WEAKREF_API bool built_in() noexcept;
// From now on, on this thread, allocation point number n (counting from 1)
// fails, the others succeed; fail_from(n): it and every one after it fail
// (memory exhausted). Both restart the count.
WEAKREF_API void fail_at(std::uint64_t n) noexcept;
WEAKREF_API void fail_from(std::uint64_t n) noexcept;
// No allocation fails any more (the count goes on).
WEAKREF_API void disarm() noexcept;
// Allocation points met on this thread since the last fail_at/fail_from.
WEAKREF_API std::uint64_t count() noexcept;
// Whether a failure was injected since the last fail_at/fail_from.
WEAKREF_API bool injected() noexcept;
// One allocation point: counts it, and says whether it must fail.
WEAKREF_API bool should_fail() noexcept;

}  // namespace weakref::detail::fault
