// Library version.
#pragma once

/// The library's major version (semantic versioning).
#define WEAKREF_VERSION_MAJOR 0
/// The library's minor version.
#define WEAKREF_VERSION_MINOR 1
/// The library's patch version.
#define WEAKREF_VERSION_PATCH 0

namespace weakref {
/// The library's version, "MAJOR.MINOR.PATCH".
inline constexpr const char* version = "0.1.0";
}  // namespace weakref
