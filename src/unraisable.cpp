// The unraisable-exception hook (weakref/unraisable.hpp).
//
// The hook is a shared_ptr swapped under a mutex; a report copies it and calls
// it with no lock held, so a hook may report, set hooks or use the library.
// Reporting allocates nothing of its own: exceptions met while memory is
// exhausted (std::bad_alloc out of a callback) reach the hook, and the
// default hook writes them, piece by piece.
#include "weakref/unraisable.hpp"

#include <cstdio>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <utility>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define WEAKREF_HAVE_CXXABI 1
#endif

#include "weakref/detail/locks.hpp"
#include "weakref/detail/object.hpp"

namespace weakref {

namespace {

struct HookState {
  detail::Mutex mu;
  std::shared_ptr<const UnraisableHook> hook;
};
HookState& state() {
  static auto* s = new HookState;  // never destroyed: usable during exit
  return *s;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_state_made = (state(), true);

}  // namespace

UnraisableHook set_unraisable_hook(UnraisableHook hook) {
  auto next = hook ? std::make_shared<const UnraisableHook>(std::move(hook)) : nullptr;
  std::lock_guard<detail::Mutex> g(state().mu);
  std::shared_ptr<const UnraisableHook> old = std::exchange(state().hook, std::move(next));
  return old ? *old : UnraisableHook{};
}

UnraisableHook get_unraisable_hook() {
  std::lock_guard<detail::Mutex> g(state().mu);
  return state().hook ? *state().hook : UnraisableHook{};
}

std::string describe_exception(std::exception_ptr e) {
  if (!e) return "NoneType: None";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return std::string(detail::type_name(typeid(ex))) + ": " + ex.what();
  } catch (...) {
#ifdef WEAKREF_HAVE_CXXABI
    if (const std::type_info* t = abi::__cxa_current_exception_type())
      return std::string(detail::type_name(*t));
#endif
    return "unknown exception";
  }
}

namespace {

// describe_exception()'s text written to f without allocating anything
// (exceptions reported while memory is exhausted are common).
void write_exception(std::FILE* f, std::exception_ptr e) noexcept {
  if (!e) {
    std::fputs("NoneType: None", f);
    return;
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fputs(detail::type_name(typeid(ex)), f);
    std::fputs(": ", f);
    std::fputs(ex.what(), f);
  } catch (...) {
#ifdef WEAKREF_HAVE_CXXABI
    if (const std::type_info* t = abi::__cxa_current_exception_type()) {
      std::fputs(detail::type_name(*t), f);
      return;
    }
#endif
    std::fputs("unknown exception", f);
  }
}

// The hook in force (null: the default), copied under the lock.
std::shared_ptr<const UnraisableHook> current_hook() noexcept {
  std::lock_guard<detail::Mutex> g(state().mu);
  return state().hook;
}

void report(const UnraisableInfo& info) noexcept {
  std::shared_ptr<const UnraisableHook> hook = current_hook();
  if (!hook) {
    default_unraisable_hook(info);
    return;
  }
  try {
    (*hook)(info);
  } catch (...) {
    // As CPython: report the hook's own failure, then the original.
    std::fputs("Exception ignored in: unraisable hook\n", stderr);
    write_exception(stderr, std::current_exception());
    std::fputc('\n', stderr);
    default_unraisable_hook(info);
  }
}

}  // namespace

// Writes piece by piece, allocating nothing.
void default_unraisable_hook(const UnraisableInfo& info) noexcept {
  std::FILE* f = stderr;
  std::fputs(info.err_msg.empty() ? "Exception ignored in" : info.err_msg.c_str(), f);
  if (!info.object.empty()) {
    std::fputs(": ", f);
    std::fputs(info.object.c_str(), f);
  }
  std::fputc('\n', f);
  write_exception(f, info.exception);
  std::fputc('\n', f);
  std::fflush(f);
}

void write_unraisable(std::exception_ptr e, std::string err_msg, std::string object) noexcept {
  report(UnraisableInfo{std::move(e), std::move(err_msg), std::move(object)});
}

// With texts that are not strings yet: making them may fail for lack of
// memory, and then the hook gets the exception with empty texts (the
// default hook says "Exception ignored in") rather than nothing at all.
void write_unraisable(std::exception_ptr e, const char* err_msg, std::string object) noexcept {
  UnraisableInfo info{std::move(e), {}, std::move(object)};
  try {
    info.err_msg = err_msg;
  } catch (...) {
  }
  report(info);
}

void write_unraisable(std::exception_ptr e, const char* err_msg, const char* object) noexcept {
  UnraisableInfo info{std::move(e), {}, {}};
  try {
    info.err_msg = err_msg;
    info.object = object;
  } catch (...) {
  }
  report(info);
}

}  // namespace weakref
