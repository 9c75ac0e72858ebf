// weakref::getweakrefcount and weakref::getweakrefs: every live weakref
// object to an object -- refs, proxies, WeakMethods, the refs inside
// finalizers and weak containers -- as CPython counts and lists them.
#pragma once

#include <cstddef>
#include <vector>

#include "ref.hpp"

namespace weakref {

/// Number of live weakref objects to obj (Python's
/// `weakref.getweakrefcount`): refs, proxies, WeakMethods, the refs inside
/// finalizers and weak-container entries; 0 for a null Strong. Takes the
/// object's side-table lock; callable from any thread that holds obj.
template <class T>
std::size_t getweakrefcount(const Strong<T>& obj) noexcept {
  auto* h = detail::StrongAccess::header(obj);
  return h ? detail::weak_count(h) : 0;
}

/// The weakref objects to obj (Python's `weakref.getweakrefs`), in CPython's
/// order (basic ref, basic proxy, then the others newest first), as
/// type-erased handles: compare them with .is() to a ref, proxy or
/// WeakMethod to find which is which. Empty for a null Strong. Throws
/// std::bad_alloc.
template <class T>
std::vector<ref<>> getweakrefs(const Strong<T>& obj) {
  std::vector<ref<>> out;
  auto* h = detail::StrongAccess::header(obj);
  if (!h) return out;
  std::vector<detail::WeakObject*> list = detail::weak_list(h);
  out.reserve(list.size());
  for (detail::WeakObject* w : list) out.push_back(ref<>::adopt_weak_object(w));
  return out;
}

}  // namespace weakref
