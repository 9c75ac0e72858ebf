// The count word's value types (include/weakref/detail/count_word.hpp):
// every field and flag decodes to what was encoded, none disturbs another,
// the builders keep what they do not change, and the header and side flag
// sets are apart (compile time; tests/compile_fail/count_word_side_flag_on_header.cpp
// checks the message). With the checks on, misuses stop in the type.
#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>

#include "weakref/detail/count_word.hpp"
#include "weakref/detail/object.hpp"

namespace weakref::testing {
namespace {

using detail::ActiveWord;
using detail::HeaderWord;
using detail::SideWord;

// -- The flag sets are distinct types -----------------------------------------

static_assert(!std::is_same_v<HeaderWord, SideWord> && !std::is_same_v<HeaderWord, ActiveWord>);
static_assert(!std::is_same_v<HeaderWord::Flag, SideWord::Flag> &&
              !std::is_same_v<HeaderWord::Flag, ActiveWord::Flag> &&
              !std::is_same_v<SideWord::Flag, ActiveWord::Flag>);
// A side-word flag is no header-word flag, and the other way round.
static_assert(!std::is_convertible_v<SideWord::Flag, HeaderWord::Flag>);
static_assert(!std::is_convertible_v<HeaderWord::Flag, SideWord::Flag>);
template <class Word, class Flag>
concept Tests = requires(Word w, Flag f) {
  w.has(f);
};
template <class Word, class Flag>
concept Sets = requires(Word w, Flag f) {
  w.with(f);
};
template <class Word>
concept NamesSide = requires {
  Word::kSide;
};
template <class Word>
concept NamesWeakCleared = requires {
  Word::kWeakCleared;
};
template <class Word>
concept ReadsSide = requires(Word w) {
  w.side();
}
|| requires(Word w) { w.has_side(); };
template <class Word>
concept ReadsWeakCleared = requires(Word w) {
  w.weak_cleared();
};

static_assert(Tests<HeaderWord, HeaderWord::Flag> && Tests<SideWord, SideWord::Flag> &&
              Tests<ActiveWord, ActiveWord::Flag>);
static_assert(!Tests<HeaderWord, SideWord::Flag> && !Tests<SideWord, HeaderWord::Flag>);
static_assert(!Tests<ActiveWord, HeaderWord::Flag> && !Tests<ActiveWord, SideWord::Flag>);
static_assert(!Sets<HeaderWord, SideWord::Flag> && !Sets<SideWord, HeaderWord::Flag>);
// Bit 0 has a name, and an accessor, in its own word only.
static_assert(NamesSide<HeaderWord> && !NamesSide<SideWord> && !NamesSide<ActiveWord>);
static_assert(NamesWeakCleared<SideWord> && !NamesWeakCleared<HeaderWord> &&
              !NamesWeakCleared<ActiveWord>);
static_assert(ReadsSide<HeaderWord> && !ReadsSide<SideWord> && !ReadsSide<ActiveWord>);
static_assert(ReadsWeakCleared<SideWord> && !ReadsWeakCleared<HeaderWord> &&
              !ReadsWeakCleared<ActiveWord>);
// Words of one kind do not convert to another implicitly.
static_assert(!std::is_convertible_v<HeaderWord, SideWord> &&
              !std::is_convertible_v<std::uint64_t, HeaderWord>);

// -- Zero cost: one word, built at compile time -------------------------------

static_assert(sizeof(HeaderWord) == sizeof(std::uint64_t) &&
              sizeof(SideWord) == sizeof(std::uint64_t));
static_assert(std::is_trivially_copyable_v<SideWord> && std::is_standard_layout_v<SideWord>);
static_assert(HeaderWord::initial().count() == 1 && HeaderWord::initial().heap() == 0 &&
              HeaderWord::initial().raw() == HeaderWord::kOne);
static_assert(SideWord().plus(3).minus().count() == 2);

// -- The layout design.md documents -------------------------------------------

TEST(CountWordTest, FieldsSitWhereTheLayoutSays) {
  EXPECT_EQ(ActiveWord().with_count(1).raw(), 1ULL << 32);
  EXPECT_EQ(ActiveWord().with_count(0xffffffff).raw(), 0xffffffffULL << 32);
  EXPECT_EQ(ActiveWord().with_heap(1).raw(), 1ULL << 16);
  EXPECT_EQ(ActiveWord().with_heap(0xffff).raw(), 0xffffULL << 16);
  EXPECT_EQ(ActiveWord().with_count(0).unfrozen().raw(), 1ULL << 6);  // epoch 1
  EXPECT_EQ(std::uint64_t{HeaderWord::kSide}, 1U);
  EXPECT_EQ(std::uint64_t{SideWord::kWeakCleared}, 1U);
  EXPECT_EQ(std::uint64_t{ActiveWord::kFrozen}, 2U);
  EXPECT_EQ(std::uint64_t{ActiveWord::kTouched}, 4U);
  EXPECT_EQ(std::uint64_t{ActiveWord::kFinalized}, 8U);
  EXPECT_EQ(std::uint64_t{ActiveWord::kShared}, 16U);
  EXPECT_EQ(std::uint64_t{ActiveWord::kInCollection}, 32U);
}

// -- Round trips ----------------------------------------------------------------

constexpr std::uint32_t kCounts[] = {0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
constexpr std::uint32_t kHeaps[] = {0, 1, 2, 0x1234, 0xfffe, 0xffff};
constexpr SideWord::Flag kSideFlags[] = {SideWord::kWeakCleared, SideWord::kFrozen,
                                         SideWord::kTouched,     SideWord::kFinalized,
                                         SideWord::kShared,      SideWord::kInCollection};

// Every flag as seen through its accessor (weak_cleared() first).
std::uint64_t flags_of(SideWord w) {
  return (w.weak_cleared() ? 1 : 0) | (w.frozen() ? 2 : 0) | (w.touched() ? 4 : 0) |
         (w.finalized() ? 8 : 0) | (w.shared() ? 16 : 0) | (w.in_collection() ? 32 : 0);
}

TEST(CountWordTest, CountHeapEpochAndFlagsRoundTrip) {
  for (std::uint32_t count : kCounts)
    for (std::uint32_t heap : kHeaps)
      for (std::uint64_t flags = 0; flags < 64; ++flags) {
        SideWord w = SideWord().with_count(count).with_heap(heap);
        for (SideWord::Flag f : kSideFlags)
          if (flags & f) w = w.with(f);
        EXPECT_EQ(w.count(), count);
        EXPECT_EQ(w.heap(), heap);
        EXPECT_EQ(w.epoch(), 0U);
        EXPECT_EQ(flags_of(w), flags) << count << " " << heap;
        EXPECT_EQ(SideWord(w.raw()), w);
      }
}

TEST(CountWordTest, EachFlagSetsAndClearsItselfAlone) {
  const SideWord base = SideWord().with_count(7).with_heap(0x4321).unfrozen().unfrozen();
  for (SideWord::Flag f : kSideFlags) {
    const SideWord on = base.with(f);
    EXPECT_TRUE(on.has(f));
    EXPECT_EQ(flags_of(on), std::uint64_t{f});
    EXPECT_EQ(on.count(), 7U);
    EXPECT_EQ(on.heap(), 0x4321U);
    EXPECT_EQ(on.epoch(), 2U);
    EXPECT_EQ(on.with(f), on);  // idempotent
    EXPECT_EQ(on.without(f), base);
    // Every other flag on, then this one off: the others stay.
    SideWord all = base;
    for (SideWord::Flag g : kSideFlags) all = all.with(g);
    EXPECT_EQ(flags_of(all.without(f)), 63U & ~std::uint64_t{f});
  }
}

TEST(CountWordTest, CountArithmeticLeavesTheRestAlone) {
  const HeaderWord w = HeaderWord::initial()
                           .with_heap(0xffff)
                           .with(HeaderWord::kShared)
                           .with(HeaderWord::kFinalized);
  EXPECT_EQ(w.plus().count(), 2U);
  EXPECT_EQ(w.plus(10).minus(11).count(), 0U);
  EXPECT_EQ(w.plus().minus(), w);
  EXPECT_EQ(w.minus().plus(), w);
  EXPECT_EQ(w.minus().heap(), 0xffffU);
  EXPECT_TRUE(w.minus().shared() && w.minus().finalized() && !w.minus().frozen());
  // The top of the count: no carry out of the word, none into the heap.
  const SideWord top = SideWord().with_count(0xfffffffe).with_heap(3);
  EXPECT_EQ(top.plus().count(), 0xffffffffU);
  EXPECT_EQ(top.plus().heap(), 3U);
  EXPECT_EQ(w.with_count(42).count(), 42U);
  EXPECT_EQ(w.with_count(42).heap(), 0xffffU);
}

TEST(CountWordTest, AHeapIndexReplacesTheOldOne) {
  const ActiveWord w = ActiveWord().with_count(5).with_heap(0xffff).with(ActiveWord::kFrozen);
  const ActiveWord moved = w.with_heap(1);
  EXPECT_EQ(moved.heap(), 1U);
  EXPECT_EQ(moved.count(), 5U);
  EXPECT_TRUE(moved.frozen());
  EXPECT_EQ(moved.with_heap(0xffff), w);
}

TEST(CountWordTest, UnfreezingClearsFrozenAndTouchedAndBumpsTheEpoch) {
  const SideWord frozen = SideWord()
                              .with_count(3)
                              .with_heap(0x10)
                              .with(SideWord::kFrozen)
                              .with(SideWord::kTouched)
                              .with(SideWord::kShared)
                              .with(SideWord::kWeakCleared);
  const SideWord thawed = frozen.unfrozen();
  EXPECT_FALSE(thawed.frozen());
  EXPECT_FALSE(thawed.touched());
  EXPECT_TRUE(thawed.shared());
  EXPECT_TRUE(thawed.weak_cleared());
  EXPECT_EQ(thawed.count(), 3U);
  EXPECT_EQ(thawed.heap(), 0x10U);
  EXPECT_EQ(thawed.epoch(), 1U);
  // A locker's word from before the freeze never equals one after it.
  EXPECT_NE(thawed, frozen.without(SideWord::kFrozen).without(SideWord::kTouched));
  // The epoch wraps at 10 bits without touching the heap index.
  SideWord w = thawed;
  for (int i = 1; i < 1024; ++i) w = w.unfrozen();
  EXPECT_EQ(w.epoch(), 0U);
  EXPECT_EQ(w.heap(), 0x10U);  // (even: a carry into bit 16 would show)
  EXPECT_EQ(w.count(), 3U);
}

TEST(CountWordTest, TheSideFormPointsAtTheSideTable) {
  detail::ObjectHeader h{};
  detail::SideTable s(&h, SideWord::initial());
  const HeaderWord w = HeaderWord::of_side(&s);
  EXPECT_TRUE(w.has_side());
  EXPECT_EQ(w.side(), &s);
  EXPECT_TRUE(w.has(HeaderWord::kSide));
  EXPECT_FALSE(HeaderWord::initial().has_side());
  // The header's active word, and its count word, follow the side form.
  h.word.store(HeaderWord::initial().plus().raw());
  EXPECT_EQ(&h.active_word(), &h.word);
  EXPECT_EQ(h.count_word().count(), 2U);
  h.word.store(w.raw());
  EXPECT_EQ(&h.active_word(), &s.word);
  EXPECT_EQ(h.count_word().count(), 1U);
}

TEST(CountWordTest, TheSideWordTakesOverTheInlineWord) {
  const HeaderWord inline_word =
      HeaderWord::initial().plus(4).with_heap(77).with(HeaderWord::kShared);
  const SideWord side = SideWord::from_header(inline_word);
  EXPECT_EQ(side.count(), 5U);
  EXPECT_EQ(side.heap(), 77U);
  EXPECT_TRUE(side.shared());
  EXPECT_FALSE(side.weak_cleared());
}

// -- Misuse stops in the type (checks on) --------------------------------------

class CountWordDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!WEAKREF_DCHECKS) GTEST_SKIP() << "built with WEAKREF_DCHECKS off";
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(CountWordDeathTest, TheCountNeverGoesBelowZero) {
  EXPECT_DEATH((void)SideWord().minus(), "count_word\\.hpp:[0-9]+: .*strong count below 0");
  EXPECT_DEATH((void)HeaderWord::initial().minus(2), "strong count below 0");
}

TEST_F(CountWordDeathTest, TheCountNeverWrapsAround) {
  EXPECT_DEATH((void)SideWord().with_count(0xffffffff).plus(), "strong count overflow");
}

TEST_F(CountWordDeathTest, AHeapIndexMustFitSixteenBits) {
  EXPECT_DEATH((void)ActiveWord().with_heap(0x10000), "heap index out of the count word");
}

TEST_F(CountWordDeathTest, AHeaderWordInSideFormHasNoCount) {
  detail::ObjectHeader h{};
  detail::SideTable s(&h, SideWord::initial());
  const HeaderWord w = HeaderWord::of_side(&s);
  EXPECT_DEATH((void)w.count(), "count bits of a header word in the side form");
  EXPECT_DEATH((void)w.frozen(), "count bits of a header word in the side form");
  EXPECT_DEATH((void)SideWord::from_header(w), "side word made from a header word in the side");
  EXPECT_DEATH((void)HeaderWord::initial().side(), "side\\(\\) of a header word in the inline");
}

}  // namespace
}  // namespace weakref::testing
