// detail::ReaderSlots (include/weakref/detail/reader_slots.hpp), the read
// side of ConcurrentWeakValueDictionary's shard locks: a reader announces
// itself in a slot of its own; a writer that has raised its flag waits for
// the readers of its tag, and only for those. No timing: each test checks
// an order of events that the protocol makes certain.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "weakref/detail/reader_slots.hpp"

namespace weakref::testing {
namespace {

using detail::ReaderSlots;

TEST(ReaderSlotsTest, AThreadHoldsOneSlotAtATime) {
  ReaderSlots slots;
  std::atomic<std::uint32_t>* first = slots.enter(1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->load(), 1U);
  // A read inside a read (a Hash that uses the dictionary) finds its slot
  // taken and takes the slow path.
  EXPECT_EQ(slots.enter(2), nullptr);
  EXPECT_EQ(first->load(), 1U);
  ReaderSlots::leave(first);
  EXPECT_EQ(first->load(), 0U);
  std::atomic<std::uint32_t>* again = slots.enter(2);
  EXPECT_EQ(again, first);
  ReaderSlots::leave(again);
}

TEST(ReaderSlotsTest, EachObjectHasItsOwnSlots) {
  ReaderSlots a, b;
  std::atomic<std::uint32_t>* sa = a.enter(1);
  std::atomic<std::uint32_t>* sb = b.enter(1);
  ASSERT_NE(sa, nullptr);
  ASSERT_NE(sb, nullptr);
  EXPECT_NE(sa, sb);
  ReaderSlots::leave(sa);
  ReaderSlots::leave(sb);
}

// The writer returns from its wait only after the reader of its tag has
// left; a reader of another tag does not hold it up.
TEST(ReaderSlotsTest, AWriterWaitsForTheReadersOfItsTagOnly) {
  ReaderSlots slots;
  std::atomic<bool> entered{false}, release{false}, left{false}, other_done{false};
  std::thread reader([&] {
    std::atomic<std::uint32_t>* s = slots.enter(7);
    ASSERT_NE(s, nullptr);
    entered.store(true);
    while (!release.load()) std::this_thread::yield();
    left.store(true);  // before leaving: the writer must see it
    ReaderSlots::leave(s);
  });
  while (!entered.load()) std::this_thread::yield();
  // Another tag: no wait, although the reader is still inside.
  slots.wait_for_readers(8);
  EXPECT_FALSE(left.load());
  other_done.store(true);
  std::thread writer([&] {
    slots.wait_for_readers(7);
    EXPECT_TRUE(left.load());
  });
  release.store(true);
  writer.join();
  reader.join();
  EXPECT_TRUE(other_done.load());
}

// The whole protocol as ConcurrentWeakValueDictionary runs it, on a plain
// (non-atomic) pair that a writer keeps equal: readers never see it torn.
// Under ThreadSanitizer, a read that the protocol let overlap a write
// would also be reported as a data race.
TEST(ReaderSlotsTest, ReadersNeverOverlapAWriter) {
  ReaderSlots slots;
  std::atomic<bool> writing{false};
  std::atomic<bool> writer_lock{false};  // the writers' exclusive lock
  std::uint64_t a = 0, b = 0;            // guarded
  std::atomic<std::uint64_t> fast_reads{0};
  std::atomic<int> writers_left{2};
  constexpr int kWrites = 2000;
  constexpr int kReads = 20000;
  constexpr std::uint64_t kFastReadsPerReader = 100;
  auto write = [&](std::uint64_t v) {
    while (writer_lock.exchange(true, std::memory_order_acquire)) std::this_thread::yield();
    writing.store(true, std::memory_order_seq_cst);
    slots.wait_for_readers(1);
    a = v;
    b = v;
    writing.store(false, std::memory_order_release);
    writer_lock.store(false, std::memory_order_release);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) write(static_cast<std::uint64_t>(t * kWrites + i));
      writers_left.fetch_sub(1);
    });
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&] {
      // At least kReads attempts, and on until the writers are done and
      // this reader has gone the fast way kFastReadsPerReader times. The
      // scheduler may keep a writer's flag up through all of the first
      // kReads (2 cores, 4 threads), so the count of fast reads is only
      // certain once the writers have stopped: the loop ends, with no
      // clock.
      std::uint64_t mine = 0;
      for (int i = 0; i < kReads || writers_left.load() != 0 || mine < kFastReadsPerReader; ++i) {
        std::atomic<std::uint32_t>* s = slots.enter(1);
        if (!s) continue;
        if (writing.load(std::memory_order_seq_cst)) {
          ReaderSlots::leave(s);
          continue;  // the dictionary would wait on the shared lock here
        }
        const std::uint64_t x = a, y = b;
        ReaderSlots::leave(s);
        ASSERT_EQ(x, y);
        ++mine;
        fast_reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(a, b);
  EXPECT_GE(fast_reads.load(), 2 * kFastReadsPerReader);
}

}  // namespace
}  // namespace weakref::testing
