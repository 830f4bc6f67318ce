// The CPU threads of one item: automatic alone, a share of the cores with several items at once.
#include <gtest/gtest.h>

#include "daemon/pipeline/thread_plan.hpp"

namespace heygem::pipeline {
namespace {

TEST(ThreadPlan, AloneEveryPoolSizesItself) {
  const auto plan = plan_threads(16, 1, false);
  EXPECT_EQ(plan.encoder, 0);
  EXPECT_EQ(plan.encode_conversion, 0);
  EXPECT_EQ(plan.decoder, 0);
  EXPECT_EQ(plan.decode_conversion, 0);
  EXPECT_EQ(plan_threads(16, 1, true).decoder, 1) << "with NVDEC the CPU only parses";
}

TEST(ThreadPlan, SeveralItemsShareTheCoresAndX264GetsTheLargestPart) {
  for (int cores : {2, 8, 16, 64}) {
    for (int items : {2, 3, 4, 8}) {
      SCOPED_TRACE(std::to_string(cores) + " cores, " + std::to_string(items) + " items");
      const auto plan = plan_threads(cores, items, false);
      EXPECT_GE(plan.encoder, 1);
      EXPECT_GE(plan.encode_conversion, 1);
      EXPECT_GE(plan.decoder, 1);
      EXPECT_GE(plan.decode_conversion, 1);
      if (cores >= items) EXPECT_LE(plan.encoder * items, cores) << "x264 pools together fit the machine";
      EXPECT_GE(plan.encoder, plan.encode_conversion);
      EXPECT_GE(plan.encoder, plan.decoder);
    }
  }
  EXPECT_EQ(plan_threads(16, 4, false).encoder, 4);
  EXPECT_EQ(plan_threads(16, 4, true).decoder, 1);
  EXPECT_GE(plan_threads(0, 2, false).encoder, 1) << "0 cores = this machine's";
}

}  // namespace
}  // namespace heygem::pipeline
