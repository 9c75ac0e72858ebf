// The index of traced objects' extents that the thread rule's check uses
// (weakref/detail/thread_check.hpp has the rule and the check; the index is
// in src/thread_check.cpp). Built only with WEAKREF_CHECK_THREADS; without it
// the hooks are empty inline functions.
//
// Invariants:
//  * An object is in the index from its track() (after its constructor) to
//    its untrack() (the first step of its death, or its death within a
//    collection), and again after a resurrection by tp_finalize in a death
//    (src/object.cpp). So a write found in the index is a write to a live
//    traced object that is neither being built nor dying; the collector's
//    garbage stays in the index until it dies (the check exempts the
//    collecting thread's writes to it by the kInCollection flag).
//  * The index never decides what the object's heap is: the check reads the
//    object's count word, so heap merges and moves need no hook.
//  * Adding allocates (outside the index's locks, with malloc, so that the
//    library's fault injection and a test's operator new never see it); an
//    object that cannot be added for lack of memory is simply not checked.
#pragma once

#include "weakref/detail/object.hpp"
#include "weakref/detail/thread_check.hpp"

namespace weakref::detail {

#if WEAKREF_CHECK_THREADS
void member_index_add(ObjectHeader* h) noexcept;
void member_index_remove(ObjectHeader* h) noexcept;
#else
inline void member_index_add(ObjectHeader*) noexcept {}
inline void member_index_remove(ObjectHeader*) noexcept {}
#endif

}  // namespace weakref::detail
