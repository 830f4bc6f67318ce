#pragma once
// The batch sizes a generator is warmed with, and how a smaller batch is cut into them. oneDNN (CPU)
// and cuDNN (GPU) build their kernels for each input shape on first use, which made the first job's
// tail batch (25 frames = 16 + 9) cost ~10 % more than the same batch later. Warming the full batch
// and every power of two below it, and cutting a short batch into powers of two (9 = 8 + 1), means a
// job never meets a cold shape. No torch here: the daemon's residency and pipeline both use it.
#include <cstdint>
#include <vector>

namespace heygem::models {

// The one home of the default batch sizes, each by its own model's device: what the pipeline batches
// and the daemon warms. Faces per generator call, and frames per detector call, when a job does
// not choose.
inline int64_t default_generator_batch(bool on_gpu) { return on_gpu ? 128 : 16; }
inline int64_t default_detector_batch(bool on_gpu) { return on_gpu ? 32 : 4; }
inline int64_t default_restorer_batch(bool on_gpu) { return on_gpu ? 8 : 1; }  // 512x512 faces per GFPGAN call

// `full` itself, then the powers of two below it, largest first (16 -> 16, 8, 4, 2, 1).
inline std::vector<int64_t> warmed_batch_sizes(int64_t full) {
  std::vector<int64_t> sizes;
  if (full <= 0) return sizes;
  sizes.push_back(full);
  int64_t power = 1;
  while (power * 2 < full) power *= 2;
  for (; power >= 1; power /= 2)
    if (power != full) sizes.push_back(power);
  return sizes;
}

// Pieces of a batch of `count` that are all warmed sizes: the full batch as it is, a smaller one as
// its binary digits, largest first (25 of 16 -> 16 is the caller's; 9 -> 8, 1). A count above `full`
// (a caller that asked for a larger batch) stays whole.
inline std::vector<int64_t> split_into_warmed_batches(int64_t count, int64_t full) {
  if (count <= 0) return {};
  if (count >= full) return {count};
  std::vector<int64_t> pieces;
  int64_t power = 1;
  while (power * 2 <= count) power *= 2;
  for (; power >= 1; power /= 2)
    if (count & power) pieces.push_back(power);
  return pieces;
}

}  // namespace heygem::models
