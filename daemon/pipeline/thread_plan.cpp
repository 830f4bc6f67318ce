#include "daemon/pipeline/thread_plan.hpp"

#include <algorithm>
#include <thread>

namespace heygem::pipeline {

ThreadPlan plan_threads(int cores, int items_at_once, bool nvdec) {
  if (cores <= 0) cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadPlan plan;
  // Alone, every pool takes FFmpeg's and x264's own automatic sizes (measured best for one job).
  if (items_at_once <= 1) {
    plan.encode_conversion = plan.decode_conversion = 0;
    plan.decoder = nvdec ? 1 : 0;
    return plan;
  }
  const int share = std::max(1, cores / items_at_once);
  // x264 is the floor of every job: it gets the whole share; the conversions and the decoder take a
  // quarter each, since they are a few times cheaper per frame at the pipeline's preset.
  plan.encoder = share;
  plan.encode_conversion = std::max(1, share / 4);
  plan.decode_conversion = std::max(1, share / 4);
  plan.decoder = nvdec ? 1 : std::max(1, share / 4);
  return plan;
}

}  // namespace heygem::pipeline
