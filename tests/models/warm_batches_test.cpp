// The warmed batch sizes and the cutting of a short batch into them (daemon/models/warm_batches.hpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "daemon/models/warm_batches.hpp"

namespace heygem::models {
namespace {

using Sizes = std::vector<int64_t>;

TEST(WarmBatches, FullBatchThenThePowersOfTwoBelowIt) {
  EXPECT_EQ(warmed_batch_sizes(16), (Sizes{16, 8, 4, 2, 1}));
  EXPECT_EQ(warmed_batch_sizes(128), (Sizes{128, 64, 32, 16, 8, 4, 2, 1}));
  EXPECT_EQ(warmed_batch_sizes(12), (Sizes{12, 8, 4, 2, 1}));
  EXPECT_EQ(warmed_batch_sizes(1), (Sizes{1}));
  EXPECT_TRUE(warmed_batch_sizes(0).empty());
}

TEST(WarmBatches, EveryShortBatchIsCutIntoWarmedSizesThatAddUp) {
  for (const int64_t full : {1, 5, 12, 16, 128}) {
    const Sizes warmed = warmed_batch_sizes(full);
    for (int64_t count = 1; count <= full + 3; ++count) {
      const Sizes pieces = split_into_warmed_batches(count, full);
      EXPECT_EQ(std::accumulate(pieces.begin(), pieces.end(), int64_t{0}), count) << count << " of " << full;
      if (count > full) continue;  // a caller's larger batch stays whole
      for (const int64_t piece : pieces)
        EXPECT_NE(std::find(warmed.begin(), warmed.end(), piece), warmed.end())
            << "piece " << piece << " of " << count << " (full " << full << ") is not warmed";
    }
  }
  EXPECT_EQ(split_into_warmed_batches(9, 16), (Sizes{8, 1}));
  EXPECT_EQ(split_into_warmed_batches(16, 16), (Sizes{16}));
  EXPECT_EQ(split_into_warmed_batches(200, 128), (Sizes{200}));
  EXPECT_TRUE(split_into_warmed_batches(0, 16).empty());
}

}  // namespace
}  // namespace heygem::models
