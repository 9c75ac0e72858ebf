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

  void swap(Segments& o) noexcept { segs_.swap(o.segs_); }

  E& operator[](std::uint32_t i) const noexcept {
    const std::uint64_t u = std::uint64_t{i} + kFirst;
    const unsigned s = static_cast<unsigned>(std::bit_width(u)) - kFirstShift - 1;
    return segs_[s][u - (kFirst << s)];
  }
  std::uint64_t capacity() const noexcept {
    return segs_.empty() ? 0 : (kFirst << segs_.size()) - kFirst;
  }
  void grow() {
    const std::size_t n = kFirst << segs_.size();
    segs_.reserve(segs_.size() + 1);
    segs_.push_back(static_cast<E*>(::operator new(n * sizeof(E), std::align_val_t(alignof(E)))));
  }
  // Frees the segments needed only above `size` entries (none constructed).
  void shrink_to(std::uint32_t size) noexcept {
    std::size_t keep = 0;
    while (((kFirst << keep) - kFirst) < size) ++keep;
    release_from(keep);
  }

 private:
  void release_from(std::size_t keep) noexcept {
    while (segs_.size() > keep) {
      ::operator delete(segs_.back(), std::align_val_t(alignof(E)));
      segs_.pop_back();
    }
  }
  std::vector<E*> segs_;
};

}  // namespace weakref::detail
