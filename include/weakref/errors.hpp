// Exceptions with Python's names: ReferenceError (a proxy whose referent is
// gone) and KeyError (a missing key in a weak container).
#pragma once

#include <stdexcept>
#include <string>

#include "detail/config.hpp"

namespace weakref {

// Thrown when a proxy is used after its referent died. what() is CPython's
// message: "weakly-referenced object no longer exists".
class WEAKREF_API ReferenceError : public std::runtime_error {
 public:
  ReferenceError() : std::runtime_error("weakly-referenced object no longer exists") {}
  explicit ReferenceError(const std::string& what) : std::runtime_error(what) {}
};

// Thrown by the weak containers for a missing key or element. Derives from
// std::out_of_range, what std::map::at throws, so either catch works. what()
// is the key's text when the key type can be printed, as Python's repr.
class WEAKREF_API KeyError : public std::out_of_range {
 public:
  explicit KeyError(const std::string& key) : std::out_of_range(key) {}
};

}  // namespace weakref
