// The parser's view of the operation table (replay.cpp keeps the table).
#pragma once

#include <optional>
#include <string_view>

namespace weakref::replay {

// The operand signature of an operation (oracle.py's OPS letters), or
// nothing for an unknown operation.
std::optional<std::string_view> op_signature(std::string_view op) noexcept;

}  // namespace weakref::replay
