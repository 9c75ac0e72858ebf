// Segments<E>: the entry storage of a weak container's table. Segment s holds
// kFirst << s entries; segments are never moved nor reallocated, so an
// entry's address is stable while the table grows (the table moves entries
// only when it compacts them, weak_table.hpp). Raw storage: the table
// constructs and destroys the entries.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace weakref::detail {

template <class E>
class Segments {
 public:
  static constexpr std::uint32_t kFirstShift = 3;
  static constexpr std::uint64_t kFirst = 1U << kFirstShift;

  Segments() noexcept = default;
  Segments(const Segments&) = delete;
  Segments& operator=(const Segments&) = delete;
  ~Segments() { release_from(0); }

  void swap(Segments& o) noexcept {
    base_.swap(o.base_);
    std::swap(capacity_, o.capacity_);
  }

  // Entry i is in segment s = floor(log2(i + kFirst)) - kFirstShift, whose
  // first entry is entry first(s) = (kFirst << s) - kFirst. base_[s] is the
  // address the segment would have if its first entry were entry 0, so
  // entry i is at base_[s] + i * sizeof(E): no subtraction, one load (the
  // table's lookups and write path compute this for every entry they touch).
  E& operator[](std::uint32_t i) const noexcept {
    const std::uint64_t u = std::uint64_t{i} + kFirst;
    const unsigned s = static_cast<unsigned>(63 - std::countl_zero(u)) - kFirstShift;
    return *reinterpret_cast<E*>(base_[s] + std::uint64_t{i} * sizeof(E));
  }
  std::uint64_t capacity() const noexcept { return capacity_; }
  // Whether more than the first segment is allocated.
  bool beyond_first() const noexcept { return base_.size() > 1; }
  void grow() {
    const std::size_t n = kFirst << base_.size();
    base_.reserve(base_.size() + 1);
    auto* seg = static_cast<E*>(::operator new(n * sizeof(E), std::align_val_t(alignof(E))));
    base_.push_back(reinterpret_cast<std::uintptr_t>(seg) - (n - kFirst) * sizeof(E));
    capacity_ = (kFirst << base_.size()) - kFirst;
  }
  // Frees the segments needed only above `size` entries (none constructed).
  void shrink_to(std::uint32_t size) noexcept {
    std::size_t keep = 0;
    while (((kFirst << keep) - kFirst) < size) ++keep;
    release_from(keep);
  }

 private:
  void release_from(std::size_t keep) noexcept {
    while (base_.size() > keep) {
      const std::size_t n = kFirst << (base_.size() - 1);  // the last segment's entries
      ::operator delete(reinterpret_cast<E*>(base_.back() + (n - kFirst) * sizeof(E)),
                        std::align_val_t(alignof(E)));
      base_.pop_back();
    }
    capacity_ = base_.empty() ? 0 : (kFirst << base_.size()) - kFirst;
  }
  std::vector<std::uintptr_t> base_;  // per segment s: its address - first(s) entries
  std::uint64_t capacity_ = 0;        // entries in all segments
};

}  // namespace weakref::detail
