// Exceptions with Python's names: ReferenceError (a proxy whose referent is
// gone) and KeyError (a missing key in a weak container).
#pragma once

#include <stdexcept>
#include <string>

#include "detail/config.hpp"

namespace weakref {

/// Thrown when a proxy is used after its referent died (Python's
/// `ReferenceError`). what() is CPython's message: "weakly-referenced object
/// no longer exists".
class WEAKREF_API ReferenceError : public std::runtime_error {
 public:
  /// With CPython's message.
  ReferenceError() : std::runtime_error("weakly-referenced object no longer exists") {}
  /// With another message.
  explicit ReferenceError(const std::string& what) : std::runtime_error(what) {}
};

/// Thrown by the weak containers for a missing key or element (Python's
/// `KeyError`). Derives from std::out_of_range, what std::map::at throws, so
/// either catch works. what() is the key's text when the key type can be
/// printed, as Python's repr.
class WEAKREF_API KeyError : public std::out_of_range {
 public:
  /// `key`: the text what() returns (the key's repr).
  explicit KeyError(const std::string& key) : std::out_of_range(key) {}
};

}  // namespace weakref
