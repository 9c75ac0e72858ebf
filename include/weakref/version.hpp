// Library version.
#pragma once

#define WEAKREF_VERSION_MAJOR 0
#define WEAKREF_VERSION_MINOR 1
#define WEAKREF_VERSION_PATCH 0

namespace weakref {
inline constexpr const char* version = "0.1.0";
}
