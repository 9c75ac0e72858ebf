// The thread rule, checked (docs/threads.md, "The rule checked"): under the
// build option WEAKREF_CHECK_THREADS, writing a traced member (a Strong<> or
// weak handle that is a member of a traced object) from a thread that may
// not write it stops the program with a message naming the rule, the
// object's type, the object's heap and the writing thread's heap(s).
//
// The rule: thread T may write the traced members of object X iff X's heap is
// T's own heap (detail::tls_heap_index, object.hpp; never the orphan heap of
// exited threads' objects), or a SharedHeap T holds. Writes during X's
// construction (before make<T> tracks it), X's death (from its untracking at
// the start of the death: tp_finalize, callbacks, ~T) and the collector's
// breaking up of garbage (steps 7-9 of a collection, on the collecting
// thread) are not checked.
//
// How a write is seen: the writing members of Strong and of the weak handles
// (copy and move assignment, reset, swap, = nullptr, and the source of a
// move, which the move empties) call note_member_write(this), which calls the
// out-of-line check_member_write() only when the option is on; off, it is an
// empty inline function and the handles' code is what it was. The check looks
// the address up in an index of the traced objects' extents (src/thread_check.cpp:
// track() adds an object, untrack() removes it, both in src/heap.cpp), so a
// handle outside every traced object (a local, a container's buffer) is never
// a traced member. What it cannot see: handles in a buffer the object owns
// (std::vector<Strong<T>>, std::map, unique_ptr<X>: the buffer is outside the
// object), handles constructed or destroyed in place (std::optional::emplace
// and reset, std::variant changing alternative), and writes through the
// weak containers' own members.
//
// Invariants:
//  * WEAKREF_CHECK_THREADS is 0 or 1 and means the same in every translation
//    unit that uses one build of the library: the CMake option defines it
//    (PUBLIC: for the library, everything in the project and, through the
//    exported target and weakref.pc's Cflags, the consumers of an installed
//    library built with it); a translation unit that leaves it undefined
//    gets 0. check_member_write() exists in the library only when it was
//    built with the option, so code compiled with the checks on does not
//    link against a library built without them (whose track() keeps no
//    index: the checks would silently find nothing).
//  * thread_rule_violation() and thread_may_write() are in the library
//    whatever the setting.
#pragma once

#include <cstdint>

#include "config.hpp"

#ifndef WEAKREF_CHECK_THREADS
#define WEAKREF_CHECK_THREADS 0
#endif

namespace weakref::detail {

struct ObjectHeader;

// Stops the program (std::abort after writing to stderr) with a message naming
// the rule, the object's type (demangled where possible), the heap of the
// object and the calling thread's heap(s):
//   weakref: thread rule violated: <rule>: object of type Node at 0x... in
//   heap 3 (the heap of another thread), by a thread whose heap is 2 (holds
//   no shared heap)
[[noreturn]] WEAKREF_API void thread_rule_violation(const char* rule,
                                                    ObjectHeader* object) noexcept;
// Whether the calling thread may write the traced members of objects of heap
// `index` (its own heap; a SharedHeap it holds). src/thread_check.cpp.
WEAKREF_API bool thread_may_write(std::uint32_t index) noexcept;
// The value of WEAKREF_CHECK_THREADS the library was compiled with.
WEAKREF_API bool thread_checks_enabled_in_library() noexcept;

#if WEAKREF_CHECK_THREADS
// The check of a write to the handle at `member`: when it lies in a live,
// tracked object that the calling thread may not write (and no exemption
// above applies), thread_rule_violation("writing a traced member from a
// thread that may not write it", object).
WEAKREF_API void check_member_write(const void* member) noexcept;
#endif

// Called by every writing member of Strong and of the weak handles with the
// address of the handle written.
[[gnu::always_inline]] inline void note_member_write([[maybe_unused]] const void* member) noexcept {
#if WEAKREF_CHECK_THREADS
  check_member_write(member);
#endif
}

}  // namespace weakref::detail
