// The unraisable-exception hook (weakref/unraisable.hpp).
//
// The hook is a shared_ptr swapped under a mutex; a report copies it and calls
// it with no lock held, so a hook may report, set hooks or use the library.
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

#include "weakref/detail/object.hpp"

namespace weakref {

namespace {

struct HookState {
  std::mutex mu;
  std::shared_ptr<const UnraisableHook> hook;
};
HookState& state() {
  static auto* s = new HookState;  // never destroyed: usable during exit
  return *s;
}

}  // namespace

UnraisableHook set_unraisable_hook(UnraisableHook hook) {
  auto next = hook ? std::make_shared<const UnraisableHook>(std::move(hook)) : nullptr;
  std::lock_guard<std::mutex> g(state().mu);
  std::shared_ptr<const UnraisableHook> old = std::exchange(state().hook, std::move(next));
  return old ? *old : UnraisableHook{};
}

UnraisableHook get_unraisable_hook() {
  std::lock_guard<std::mutex> g(state().mu);
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

void default_unraisable_hook(const UnraisableInfo& info) {
  std::string text = info.err_msg.empty() ? "Exception ignored in" : info.err_msg;
  if (!info.object.empty()) text += ": " + info.object;
  text += '\n';
  text += describe_exception(info.exception);
  text += '\n';
  std::fputs(text.c_str(), stderr);
  std::fflush(stderr);
}

void write_unraisable(std::exception_ptr e, std::string err_msg, std::string object) noexcept {
  try {
    std::shared_ptr<const UnraisableHook> hook;
    {
      std::lock_guard<std::mutex> g(state().mu);
      hook = state().hook;
    }
    UnraisableInfo info{std::move(e), std::move(err_msg), std::move(object)};
    if (!hook) {
      default_unraisable_hook(info);
      return;
    }
    try {
      (*hook)(info);
    } catch (...) {
      // As CPython: report the hook's own failure, then the original.
      default_unraisable_hook({std::current_exception(), "Exception ignored in", "unraisable hook"});
      default_unraisable_hook(info);
    }
  } catch (...) {
    std::fputs("Exception ignored in: weakref unraisable hook (out of memory)\n", stderr);
  }
}

}  // namespace weakref
