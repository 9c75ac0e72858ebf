// The translation unit that builds the tests' precompiled header
// (tests/CMakeLists.txt, WEAKREF_TEST_PCH): nothing but support.hpp.
#include "support.hpp"
