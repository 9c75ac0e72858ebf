// The unraisable-exception hook: where exceptions go that cannot propagate,
// because they were thrown by a weakref callback, a finalizer run by an
// object's death or at exit, or a tp_finalize hook (CPython's
// sys.unraisablehook).
//
// The hook runs on the thread where the exception was caught, with no
// library lock held; it may use the library freely. Setting the hook is
// thread-safe. If the hook itself throws, the default hook reports both.
#pragma once

#include <exception>
#include <functional>
#include <string>

#include "detail/config.hpp"

namespace weakref {

/// What an unraisable-exception hook receives: Python's
/// `sys.UnraisableHookArgs`, in C++ terms.
struct UnraisableInfo {
  std::exception_ptr exception;  ///< the exception (rethrow to inspect)
  std::string err_msg;           ///< "Exception ignored in" or a longer text
  std::string object;            ///< repr of the weakref / finalizer / object
};

/// An unraisable-exception hook (Python's `sys.unraisablehook`). It runs on
/// the thread where the exception was caught, with no library lock held.
using UnraisableHook = std::function<void(const UnraisableInfo&)>;

/// Installs `hook` (an empty function restores the default) and returns the
/// previous hook (Python: assigning `sys.unraisablehook`). Thread-safe.
WEAKREF_API UnraisableHook set_unraisable_hook(UnraisableHook hook);
/// The hook installed now (Python: reading `sys.unraisablehook`); the
/// default one when none was set. Thread-safe.
WEAKREF_API UnraisableHook get_unraisable_hook();

/// The default hook (Python's `sys.__unraisablehook__`): writes to stderr,
/// as CPython does,
///
///     Exception ignored in: <weakref at 0x...; dead>
///     std::runtime_error: what() text
///
/// (allocating nothing: it works when memory is exhausted).
WEAKREF_API void default_unraisable_hook(const UnraisableInfo& info) noexcept;

/// Sends `e` to the hook, with `err_msg` and `object` as its texts (CPython's
/// `PyErr_WriteUnraisable`); pass std::current_exception() from inside a
/// catch block. Never throws, and needs no memory of its own: when the texts
/// cannot be made (the const char* forms), the hook gets the exception with
/// empty texts. An exception thrown by the hook goes to the default hook.
WEAKREF_API void write_unraisable(std::exception_ptr e, std::string err_msg,
                                  std::string object) noexcept;
/// write_unraisable() with a literal message.
WEAKREF_API void write_unraisable(std::exception_ptr e, const char* err_msg,
                                  std::string object) noexcept;
/// write_unraisable() with literal texts.
WEAKREF_API void write_unraisable(std::exception_ptr e, const char* err_msg,
                                  const char* object) noexcept;

/// "ns::Type: what()" for an exception, as the default hook prints it (the
/// demangled dynamic type; for an exception not derived from std::exception,
/// its type alone; "NoneType: None" for a null pointer). May throw
/// std::bad_alloc.
WEAKREF_API std::string describe_exception(std::exception_ptr e);

}  // namespace weakref
