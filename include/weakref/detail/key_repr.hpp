// The text of a weak container's key in a KeyError and in operator<<:
// Python's repr when it has one (a string in quotes, an object's own
// operator<<, else `<T object at 0x...>`).
#pragma once

#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

#include "../strong.hpp"
#include "config.hpp"
#include "object.hpp"

namespace weakref::detail {

[[noreturn]] WEAKREF_API void throw_key_error(const std::string& key);
// <name at 0x...>: Python's default repr of a container.
WEAKREF_API std::ostream& write_container_address(std::ostream& os, const char* name,
                                                  const void* self);

// detail::streamable (strong.hpp): the same trait Strong's operator<< uses.

template <class X>
void write_repr(std::ostream& os, const X& x) {
  if constexpr (is_strong<X>::value) {
    using T = typename X::element_type;
    if constexpr (!std::is_void_v<T> && streamable<T>) {
      if (x) {
        os << *x;
        return;
      }
    }
    os << x;
  } else if constexpr (std::is_convertible_v<const X&, std::string_view>) {
    os << '\'' << std::string_view(x) << '\'';
  } else if constexpr (streamable<X>) {
    os << x;
  } else {
    os << '<' << type_name(typeid(X)) << " object>";
  }
}

// weakref::KeyError whose text is the key's repr (Python's str(KeyError(k))).
template <class X>
[[noreturn]] void key_error(const X& key) {
  std::ostringstream os;
  write_repr(os, key);
  throw_key_error(os.str());
}

}  // namespace weakref::detail
