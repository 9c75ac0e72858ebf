// Build configuration shared by every header: the export macro and the
// feature macros. Nothing else lives here (one concept per file: the atomics
// helpers are in atomics.hpp, the fork gate in fork_gate.hpp, the library's
// locks in locks.hpp, type-trait helpers in type_traits.hpp, invariant
// checks in dcheck.hpp).
//
// Invariants:
//  * WEAKREF_API is defined exactly once, here, and means the same in every
//    translation unit of one build: dllexport/dllimport on Windows with
//    WEAKREF_SHARED (export while WEAKREF_BUILDING), default visibility for
//    other shared builds, nothing for a static library.
//  * WEAKREF_HAVE_SINGLE_THREADED is defined only when <sys/single_threaded.h>
//    exists and WEAKREF_NO_SINGLE_THREADED_FAST_PATH is not defined; it is
//    the only switch of the single-threaded fast path (atomics.hpp).
//  * WEAKREF_TLS_INITIAL_EXEC marks the thread-locals of the hot paths, the
//    fork gate's record among them (src/alloc.hpp says why and what it
//    needs of a shared build).
#pragma once

#if !defined(WEAKREF_NO_SINGLE_THREADED_FAST_PATH) && __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define WEAKREF_HAVE_SINGLE_THREADED 1
#endif

#if defined(_WIN32) && defined(WEAKREF_SHARED)
#if defined(WEAKREF_BUILDING)
#define WEAKREF_API __declspec(dllexport)
#else
#define WEAKREF_API __declspec(dllimport)
#endif
#elif defined(WEAKREF_SHARED)
#define WEAKREF_API __attribute__((visibility("default")))
#else
#define WEAKREF_API
#endif

#if defined(__GNUC__)
#define WEAKREF_TLS_INITIAL_EXEC [[gnu::tls_model("initial-exec")]]
#else
#define WEAKREF_TLS_INITIAL_EXEC
#endif
