// detail::Segments, the entry storage of the weak containers' table
// (include/weakref/detail/segments.hpp): segment s holds 8 << s entries, and
// growing never moves an entry.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "weakref/detail/segments.hpp"

namespace weakref::testing {
namespace {

TEST(SegmentsTest, GrowingDoublesTheCapacityAndNeverMovesAnEntry) {
  detail::Segments<std::uint64_t> s;
  EXPECT_EQ(s.capacity(), 0U);
  std::vector<std::uint64_t*> addresses;
  std::vector<std::uint64_t> capacities;
  for (std::uint32_t i = 0; i < 1000; ++i) {
    if (i == s.capacity()) {
      s.grow();
      capacities.push_back(s.capacity());
    }
    s[i] = i * 3;
    addresses.push_back(&s[i]);
  }
  EXPECT_EQ(capacities, (std::vector<std::uint64_t>{8, 24, 56, 120, 248, 504, 1016}));
  for (std::uint32_t i = 0; i < 1000; ++i) {
    ASSERT_EQ(&s[i], addresses[i]) << i;
    ASSERT_EQ(s[i], i * 3) << i;
  }
  // Entries in different segments are in different blocks; within one,
  // consecutive.
  EXPECT_EQ(&s[9], &s[8] + 1);
  EXPECT_EQ(&s[23], &s[8] + 15);
}

TEST(SegmentsTest, ShrinkKeepsTheSegmentsBelowTheSizeGiven) {
  detail::Segments<std::uint64_t> s;
  for (int i = 0; i < 4; ++i) s.grow();
  EXPECT_EQ(s.capacity(), 120U);
  std::uint64_t* kept = &s[23];
  s.shrink_to(20);
  EXPECT_EQ(s.capacity(), 24U);
  EXPECT_EQ(&s[23], kept);
  s.shrink_to(0);
  EXPECT_EQ(s.capacity(), 0U);
  detail::Segments<std::uint64_t> other;
  other.grow();
  s.swap(other);
  EXPECT_EQ(s.capacity(), 8U);
  EXPECT_EQ(other.capacity(), 0U);
}

}  // namespace
}  // namespace weakref::testing
