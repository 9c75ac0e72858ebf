// expect: cannot (convert|initialize a parameter).*SideFlags::Flag
//
// The header word and the side word have distinct flag sets
// (include/weakref/detail/count_word.hpp): bit 0 is kSide in one and
// kWeakCleared in the other, so testing a side-word flag on a header word
// does not compile.
#include <weakref/detail/count_word.hpp>
int main() {
  const weakref::detail::HeaderWord w = weakref::detail::HeaderWord::initial();
  return w.has(weakref::detail::SideWord::kWeakCleared) ? 1 : 0;
}
