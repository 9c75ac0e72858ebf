// The process-wide reader numbers of detail::ReaderSlots
// (include/weakref/detail/reader_slots.hpp explains the protocol). They
// live in the library, not in the header, so that a program whose shared
// libraries each instantiate a ConcurrentWeakValueDictionary still has one
// count: a writer scans the slots that the numbers given so far can reach,
// which is only right if every reader took its number from the same count.
#include <atomic>
#include <cstddef>

#include "weakref/detail/reader_slots.hpp"

namespace weakref::detail {

namespace {
constinit std::atomic<std::size_t> numbers_given{0};
}  // namespace

std::size_t reader_numbers_given() noexcept {
  return numbers_given.load(std::memory_order_seq_cst);
}

std::size_t reader_thread_number() noexcept {
  thread_local const std::size_t mine = numbers_given.fetch_add(1, std::memory_order_seq_cst);
  return mine;
}

}  // namespace weakref::detail
