// detail::ReaderSlots: the read side of a reader-writer lock in which a
// reader writes only a cache line of its own (a "big reader" lock, as
// Linux's brlock or the deferred readers of folly's SharedMutex). Used by
// ConcurrentWeakValueDictionary, whose lookups must not write any line that
// another reader writes: with a std::shared_mutex, every reader's lock and
// unlock is a read-modify-write of the lock's word, and that word's line
// moves between the cores at each read of a shard the other core read last.
//
// The protocol, for one lock `tag` (a nonzero number: a shard) guarded by a
// flag word `writing` and an exclusive writer lock of the caller's:
//  * A reader announces itself in its slot (slot = tag, sequentially
//    consistent), then loads `writing` (sequentially consistent). If it is
//    clear, the reader reads the guarded data, then clears its slot
//    (release). If it is set, the reader clears its slot and takes the slow
//    path (the caller's shared lock, which waits for the writer).
//  * A writer, holding the exclusive lock, sets `writing` (sequentially
//    consistent), then waits until no slot holds its tag (acquire loads),
//    then writes the data, then clears `writing` (release) before it
//    unlocks.
//  * The two stores and the two loads are sequentially consistent (a
//    store-load pair each side, as Dekker's algorithm): either the reader
//    sees `writing`, or the writer sees the reader's slot and waits for it
//    to clear. So a reader that went ahead finished before the writer wrote
//    (the writer's acquire load of the cleared slot), or started after the
//    writer had finished (the reader's load of the released flag).
//
// Slots: kSlots per ReaderSlots object (128 bytes each). A thread uses
// the slot of its process-wide reader number modulo kSlots; it claims it
// with a compare-and-swap from 0, so two threads with the same slot, or a
// thread that reads again while it reads (a Hash calling the dictionary),
// never share one: the second finds the slot taken and takes the slow path.
// A writer scans only the slots that reader numbers given out so far can
// reach (a program with two reader threads scans two lines).
//
// Cost: a read is a compare-and-swap and a store to the reader's own line
// (which stays in its core's cache) and a load of a line that only writers
// write; a write scans up to kSlots slots. Memory: kSlots * 128 bytes (two
// cache lines a slot: Intel cores fetch lines in pairs, so a neighbouring
// slot in the same pair would move between the cores with this one).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "atomics.hpp"
#include "config.hpp"

namespace weakref::detail {

// Reader numbers, process-wide (src/reader_slots.cpp): the calling thread's
// (0, 1, 2, ... in the order threads first read; never reused: a number is
// only a slot choice), and how many have been given out.
WEAKREF_API std::size_t reader_thread_number() noexcept;
WEAKREF_API std::size_t reader_numbers_given() noexcept;

class ReaderSlots {
 public:
  static constexpr std::size_t kSlots = 64;

  ReaderSlots() : slots_(new Slot[kSlots]) {}

  // Announces a read of `tag` (nonzero) by the calling thread: its slot,
  // or null when that slot is taken (then the caller takes its slow path).
  // The caller must then check its `writing` flag (sequentially consistent
  // load) and leave() at once if it is set.
  std::atomic<std::uint32_t>* enter(std::uint32_t tag) const noexcept {
    std::atomic<std::uint32_t>& s = slots_[reader_thread_number() % kSlots].v;
    std::uint32_t expected = 0;
    if (!s.compare_exchange_strong(expected, tag, std::memory_order_seq_cst,
                                   std::memory_order_relaxed)) [[unlikely]]
      return nullptr;
    return &s;
  }
  static void leave(std::atomic<std::uint32_t>* slot) noexcept {
    slot->store(0, std::memory_order_release);
  }

  // The writer's wait, after it has set its `writing` flag: returns when no
  // slot announces a read of `tag`.
  void wait_for_readers(std::uint32_t tag) const noexcept {
    const std::size_t n = std::min<std::size_t>(kSlots, reader_numbers_given());
    for (std::size_t i = 0; i < n; ++i) {
      unsigned spins = 0;
      while (slots_[i].v.load(std::memory_order_seq_cst) == tag) spin_pause(spins);
    }
  }

 private:
  struct alignas(128) Slot {
    std::atomic<std::uint32_t> v{0};
  };

  std::unique_ptr<Slot[]> slots_;
};

}  // namespace weakref::detail
