#pragma once
// How many CPU threads one item's media stages use, sized for the machine as a whole: with several
// items at once, each takes its share of the cores instead of every FFmpeg and x264 pool sizing
// itself for all of them (x264 alone would start 1.5 threads a core per item).
namespace heygem::pipeline {

// 0 = the library's automatic choice (all cores).
struct ThreadPlan {
  int encoder = 0;             // x264's threads
  int encode_conversion = 0;   // BGR -> YUV conversion pool of the writer
  int decoder = 0;             // FFmpeg's decoder threads (1 with NVDEC: the CPU only parses)
  int decode_conversion = 0;   // YUV -> BGR conversion threads of the reader
};

// `cores`: the machine's (0 = std::thread::hardware_concurrency()); `items_at_once`: how many items
// the daemon runs at the same time at most (its slots over all devices); `nvdec`: the item decodes
// on the GPU. The plan depends on these only, never on the load of the moment, so an item's output
// is the same whether it ran alone or beside others.
ThreadPlan plan_threads(int cores, int items_at_once, bool nvdec);

}  // namespace heygem::pipeline
