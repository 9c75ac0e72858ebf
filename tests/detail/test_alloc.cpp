// The small-block allocator on one thread (src/alloc.cpp): a block freed
// into a page that is not its class's current one puts the page back on the
// available list (the next allocations come from it, not from a new page),
// and the page is given back when its last block is; the current page keeps
// its blocks on its own free list (pool_deallocate's fast path tells the
// two apart by Page::current).
#include <cstddef>
#include <cstdint>
#include <set>
#include <vector>

#include <weakref/detail/alloc_stats.hpp>

#include "support.hpp"

namespace weakref::testing {
namespace {

constexpr std::size_t kPageSize = 64 * 1024;  // src/alloc.cpp's
constexpr std::size_t kSize = 488;            // a size class nothing else here uses

std::uintptr_t page_of(void* p) {
  return reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{kPageSize - 1};
}

TEST(AllocTest, PagesBehindTheCurrentOneAreReusedThenGivenBack) {
  if (!detail::pools_enabled()) GTEST_SKIP() << "AddressSanitizer build: blocks use operator new";
  const std::size_t before = detail::pool_committed_bytes();
  // Blocks on four pages: the first three full, the fourth current.
  std::vector<void*> blocks;
  std::vector<std::uintptr_t> pages;
  while (pages.size() < 4) {
    void* b = detail::pool_allocate(kSize);
    if (pages.empty() || page_of(b) != pages.back()) pages.push_back(page_of(b));
    blocks.push_back(b);
  }
  const std::size_t filled = detail::pool_committed_bytes();
  EXPECT_GE(filled, before + 4 * kPageSize);

  // Half the blocks of the first page back: it has room again.
  std::vector<void*> kept;
  std::size_t on_first = 0;  // a full page's blocks
  for (void* b : blocks) {
    if (page_of(b) == pages[0] && on_first++ % 2 == 0)
      detail::pool_deallocate(b, kSize);
    else
      kept.push_back(b);
  }
  const std::size_t given_back = (on_first + 1) / 2;
  // Enough blocks to fill the current page and take every free one of the
  // first: they all come from those two, no new page.
  std::size_t in_current = 0;
  for (void* b : kept) in_current += page_of(b) == pages[3];
  const std::size_t wanted = (on_first - in_current) + given_back;
  std::set<std::uintptr_t> used_pages;
  for (std::size_t i = 0; i < wanted; ++i) {
    void* b = detail::pool_allocate(kSize);
    used_pages.insert(page_of(b));
    kept.push_back(b);
  }
  EXPECT_EQ(used_pages, (std::set<std::uintptr_t>{pages[0], pages[3]}));
  EXPECT_EQ(detail::pool_committed_bytes(), filled);

  // Everything back: the full pages are given back (one spare page per
  // class may stay, and the current page).
  for (void* b : kept) detail::pool_deallocate(b, kSize);
  EXPECT_LE(detail::pool_committed_bytes(), before + 2 * kPageSize);
}

}  // namespace
}  // namespace weakref::testing
