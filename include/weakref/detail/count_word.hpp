// The count word: the 64 bits that hold an object's strong count, the index
// of its collector heap, a freeze epoch and five flags. Every object has one
// in its header (ObjectHeader::word); once the object has a weak reference,
// the count moves to its side table (SideTable::word) and the header's word
// points there. The values are read and built through HeaderWord, SideWord
// and ActiveWord below, never by hand.
//
// Layout (both words, as long as the header's is in the inline form):
//
//     bits 32..63  strong count                               count()
//     bits 16..31  index of the collector heap that owns the  heap()
//                  object (kNoHeap: untraced)
//     bits  6..15  freeze epoch, bumped by each unfreeze      epoch()
//     bits  1..5   kFrozen, kTouched, kFinalized, kShared,    frozen() ...
//                  kInCollection (below)
//     bit   0      means one thing in each word (the two flag sets):
//                    header word: kSide, the word is SideTable* | kSide
//                    side word:   kWeakCleared
//
// The header's word is in one of two forms:
//
//   inline (kSide clear), until the first weak reference exists: the count,
//       heap index and flags are here;
//   side (kSide set): a pointer to the object's SideTable, whose own word
//       holds the count, heap index and flags in the same layout. None of
//       the header word's other bits mean anything then (HeaderWord's
//       accessors check it in debug builds).
//
// The switch inline -> side happens once, by compare-and-swap, when the first
// weak reference is made (the maker holds a strong reference, so the count is
// at least 1), and is never undone. Every count operation is therefore a CAS
// loop on the inline word that moves to the side word when it sees kSide, or
// works on the side word directly for a Strong that keeps the side table as
// the place of its count (CountRef, object.hpp: the weak locks' Strongs).
// ObjectHeader::count_word() reads the count word wherever it is now, as an
// ActiveWord, which has the flags common to both words and no bit 0 (one
// load of the header's word, then of the side table's: loading the header's
// word twice could find the side form the second time, another thread having
// made the first weakref in between). ObjectHeader::active_word() is the
// atomic itself, for when no other thread can make that switch.
//
// Invariants
//  * count == 0 means the object's death has begun. Nothing increments a
//    zero count except the death protocol itself (tp_finalize resurrection,
//    see src/object.cpp); nothing decrements it below zero (plus()/minus()
//    check both ends in debug builds). While T's constructor runs, the count
//    is 1, make<T>'s reference (so self(this), weakrefs and finalizers work
//    in it).
//  * A weak reference may lock (obtain a Strong) only while count > 0, the
//    weakref itself is not cleared (bit 0 of WeakObject::side) and kFrozen
//    is not set (a frozen object is being judged by a collector: lockers
//    wait, see src/gc/verify.cpp). Unfreezing bumps the epoch (unfrozen()) so that
//    a locker's compare-and-swap prepared before the freeze cannot succeed
//    after it.
//  * kFrozen / kTouched belong to the collector's verification step: a strong
//    increment on a frozen word also sets kTouched, so the collector can
//    tell whether any thread reached the object while it was frozen.
//  * kFinalized (sticky) is set when tp_finalize starts to run for the
//    object, by the death or by a collector: it runs once per object (PEP
//    442).
//  * kShared (sticky) is set by the first strong increment of a traced
//    object made on a thread that does not own its heap, and from the start
//    on the objects of a shared heap (made into one, or adopted by one:
//    src/heap.hpp), which any thread may copy. Garbage that has no weakrefs
//    and was never shared cannot be reached by another thread, so the
//    collector skips the verification for it (src/gc/verify.cpp).
//  * kInCollection is set on each object of a collector's private garbage
//    list and cleared when the object goes back to a public list: with a
//    heap index equal to the collecting heap's, it tells untrack() that the
//    GcHead is in that private list (src/heap.cpp).
//  * kWeakCleared (side word only, sticky): some weakref to the object has
//    been cleared while the object could still be locked (by the collector:
//    the object is garbage, or the weakref is). Until then no weakref to it
//    is cleared while a lock can succeed, so a locker whose compare-and-swap
//    succeeds on a word without it need not read the weakref's own cleared
//    bit (the weak containers' lookups save a cache miss that way). A death
//    clears without it: the count is zero for good by then, and every lock
//    fails on that.
//  * The heap index fits 16 bits (kMaxHeap; heap.hpp's kMaxHeaps is below
//    it) and the epoch wraps at 10 bits.
//
// Zero cost: the types are one std::uint64_t, every member is constexpr and
// always inlined, so what they compile to is the bit test written by hand.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "dcheck.hpp"

namespace weakref::detail {

struct SideTable;

// The flag sets. Bits 1..5 mean the same in both words; bit 0 does not, so
// each word type has its own enumeration: HeaderWord::kSide and
// SideWord::kWeakCleared exist, SideWord::kSide and HeaderWord::kWeakCleared
// do not, and a HeaderWord's has() takes no SideWord flag (distinct enum
// types). The enumerators convert to std::uint64_t for the atomic
// read-modify-writes (rmw_fetch_or(word, std::uint64_t{SideWord::kWeakCleared},
// ...)).
struct HeaderFlags {
  enum Flag : std::uint64_t {
    kSide = 1,           // the word is SideTable* | kSide
    kFrozen = 2,         // a collector is verifying the object
    kTouched = 4,        // incremented while frozen
    kFinalized = 8,      // tp_finalize has run (or is running)
    kShared = 16,        // copied by a thread other than its heap's owner
    kInCollection = 32,  // in a collector's private garbage list
  };
};
struct SideFlags {
  enum Flag : std::uint64_t {
    kWeakCleared = 1,  // a weakref was cleared while a lock could succeed
    kFrozen = 2,
    kTouched = 4,
    kFinalized = 8,
    kShared = 16,
    kInCollection = 32,
  };
};
// The flags of whichever word holds the count (ObjectHeader::active_word):
// only those both words share.
struct ActiveFlags {
  enum Flag : std::uint64_t {
    kFrozen = 2,
    kTouched = 4,
    kFinalized = 8,
    kShared = 16,
    kInCollection = 32,
  };
};

template <class Flags>
class CountWord : public Flags {
 public:
  using Flag = typename Flags::Flag;

  static constexpr int kEpochShift = 6;
  static constexpr std::uint64_t kEpochMask = 0x3ffULL << kEpochShift;
  static constexpr int kHeapShift = 16;
  static constexpr std::uint64_t kHeapMask = 0xffffULL << kHeapShift;
  static constexpr std::uint32_t kMaxHeap = 0xffff;
  static constexpr int kCountShift = 32;
  static constexpr std::uint64_t kOne = 1ULL << kCountShift;  // one unit of count
  static constexpr std::uint32_t kMaxCount = 0xffffffff;

  constexpr CountWord() noexcept = default;  // count 0, no heap, no flags
  [[gnu::always_inline]] explicit constexpr CountWord(std::uint64_t raw) noexcept : raw_(raw) {}

  // The word of a new object: count 1 (make<T>'s reference), no heap index,
  // no flags.
  [[gnu::always_inline]] static constexpr CountWord initial() noexcept { return CountWord(kOne); }

  [[gnu::always_inline]] constexpr std::uint64_t raw() const noexcept { return raw_; }

  // -- Reading ---------------------------------------------------------------

  [[gnu::always_inline]] constexpr std::uint32_t count() const noexcept {
    check_inline();
    return static_cast<std::uint32_t>(raw_ >> kCountShift);
  }
  [[gnu::always_inline]] constexpr std::uint32_t heap() const noexcept {
    check_inline();
    return static_cast<std::uint32_t>((raw_ & kHeapMask) >> kHeapShift);
  }
  [[gnu::always_inline]] constexpr std::uint32_t epoch() const noexcept {
    check_inline();
    return static_cast<std::uint32_t>((raw_ & kEpochMask) >> kEpochShift);
  }
  [[gnu::always_inline]] constexpr bool has(Flag f) const noexcept {
    if constexpr (kIsHeader) {
      if (f != Flags::kSide) check_inline();
    }
    return (raw_ & f) != 0;
  }
  // Whether any of the flags is set, in one test (the hot paths': g++ does
  // not always merge `has(a) || has(b)` into one). A header word in the side
  // form may be asked with kSide among the flags.
  template <std::same_as<Flag>... More>
  [[gnu::always_inline]] constexpr bool has_any(Flag f, More... more) const noexcept {
    if constexpr (kIsHeader) {
      if (((f != Flags::kSide) && ... && (more != Flags::kSide))) check_inline();
    }
    return (raw_ & (std::uint64_t{f} | ... | std::uint64_t{more})) != 0;
  }
  [[gnu::always_inline]] constexpr bool frozen() const noexcept { return has(Flags::kFrozen); }
  [[gnu::always_inline]] constexpr bool touched() const noexcept { return has(Flags::kTouched); }
  [[gnu::always_inline]] constexpr bool finalized() const noexcept {
    return has(Flags::kFinalized);
  }
  [[gnu::always_inline]] constexpr bool shared() const noexcept { return has(Flags::kShared); }
  [[gnu::always_inline]] constexpr bool in_collection() const noexcept {
    return has(Flags::kInCollection);
  }

  // Header word only: whether the count is in the side table, and where.
  [[gnu::always_inline]] constexpr bool has_side()
      const noexcept requires std::same_as<Flags, HeaderFlags> {
    return (raw_ & Flags::kSide) != 0;
  }
  [[gnu::always_inline]] SideTable* side()
      const noexcept requires std::same_as<Flags, HeaderFlags> {
    WEAKREF_DCHECK(has_side(), "side() of a header word in the inline form");
    return reinterpret_cast<SideTable*>(
        static_cast<std::uintptr_t>(raw_ & ~std::uint64_t{Flags::kSide}));
  }
  // The side form pointing at s.
  [[gnu::always_inline]] static CountWord of_side(
      const SideTable* s) noexcept requires std::same_as<Flags, HeaderFlags> {
    const auto p = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(s));
    WEAKREF_DCHECK((p & Flags::kSide) == 0, "a SideTable* with bit 0 set");
    return CountWord(p | Flags::kSide);
  }

  // Side word only.
  [[gnu::always_inline]] constexpr bool weak_cleared()
      const noexcept requires std::same_as<Flags, SideFlags> {
    return has(Flags::kWeakCleared);
  }
  // The side word that takes over from header word h, in the inline form,
  // when the first weak reference is made: the same count, heap index and
  // flags, kWeakCleared clear.
  [[gnu::always_inline]] static constexpr CountWord from_header(
      CountWord<HeaderFlags> h) noexcept requires std::same_as<Flags, SideFlags> {
    WEAKREF_DCHECK(!h.has_side(), "a side word made from a header word in the side form");
    return CountWord(h.raw());
  }

  // -- Building (the word is a value: these return a new one) ----------------

  [[gnu::always_inline]] constexpr CountWord plus(std::uint32_t n = 1) const noexcept {
    WEAKREF_DCHECK(count() <= kMaxCount - n, "strong count overflow");
    return CountWord(raw_ + n * kOne);
  }
  [[gnu::always_inline]] constexpr CountWord minus(std::uint32_t n = 1) const noexcept {
    WEAKREF_DCHECK(count() >= n, "strong count below 0");
    return CountWord(raw_ - n * kOne);
  }
  [[gnu::always_inline]] constexpr CountWord with_count(std::uint32_t n) const noexcept {
    check_inline();
    return CountWord((raw_ & ~(std::uint64_t{kMaxCount} << kCountShift)) |
                     (std::uint64_t{n} << kCountShift));
  }
  [[gnu::always_inline]] constexpr CountWord with_heap(std::uint32_t index) const noexcept {
    check_inline();
    WEAKREF_DCHECK(index <= kMaxHeap, "heap index out of the count word's 16 bits");
    return CountWord((raw_ & ~kHeapMask) | (std::uint64_t{index} << kHeapShift));
  }
  [[gnu::always_inline]] constexpr CountWord with(Flag f) const noexcept {
    check_inline();
    return CountWord(raw_ | f);
  }
  [[gnu::always_inline]] constexpr CountWord without(Flag f) const noexcept {
    check_inline();
    return CountWord(raw_ & ~std::uint64_t{f});
  }
  // The word after a collector unfreezes it: kFrozen and kTouched clear,
  // the epoch one further (wrapping), so that a locker's compare-and-swap
  // prepared before the freeze fails.
  [[gnu::always_inline]] constexpr CountWord unfrozen() const noexcept {
    check_inline();
    const std::uint64_t epoch = ((raw_ & kEpochMask) + (1ULL << kEpochShift)) & kEpochMask;
    return CountWord((raw_ & ~(std::uint64_t{Flags::kFrozen} | Flags::kTouched | kEpochMask)) |
                     epoch);
  }

  friend constexpr bool operator==(CountWord a, CountWord b) noexcept { return a.raw_ == b.raw_; }

 private:
  static constexpr bool kIsHeader = std::is_same_v<Flags, HeaderFlags>;

  // A header word's count, heap and flags exist only in the inline form.
  [[gnu::always_inline]] constexpr void check_inline() const noexcept {
    if constexpr (kIsHeader)
      WEAKREF_DCHECK((raw_ & Flags::kSide) == 0,
                     "the count bits of a header word in the side form (the count is in the "
                     "side table)");
  }

  std::uint64_t raw_ = 0;
};

// An object header's word (ObjectHeader::word): inline or side form.
using HeaderWord = CountWord<HeaderFlags>;
// A side table's word (SideTable::word).
using SideWord = CountWord<SideFlags>;
// The header's inline word or the side table's word, whichever has the
// count (ObjectHeader::count_word(), active_word()).
using ActiveWord = CountWord<ActiveFlags>;

static_assert(sizeof(HeaderWord) == 8 && std::is_trivially_copyable_v<HeaderWord>);
// (Through std::uint64_t: comparing the enumerations directly is the
// -Wenum-compare error that keeps the flag sets apart.)
constexpr bool same_bit(std::uint64_t header, std::uint64_t side, std::uint64_t active) {
  return header == side && side == active;
}
static_assert(same_bit(HeaderWord::kFrozen, SideWord::kFrozen, ActiveWord::kFrozen) &&
                  same_bit(HeaderWord::kTouched, SideWord::kTouched, ActiveWord::kTouched) &&
                  same_bit(HeaderWord::kFinalized, SideWord::kFinalized, ActiveWord::kFinalized) &&
                  same_bit(HeaderWord::kShared, SideWord::kShared, ActiveWord::kShared) &&
                  same_bit(HeaderWord::kInCollection, SideWord::kInCollection,
                           ActiveWord::kInCollection),
              "bits 1..5 mean the same in both words");
static_assert(ActiveWord::kInCollection < (1ULL << ActiveWord::kEpochShift),
              "the flags stay below the epoch");

}  // namespace weakref::detail
