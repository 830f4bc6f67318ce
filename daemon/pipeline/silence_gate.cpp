#include "daemon/pipeline/silence_gate.hpp"

#include <algorithm>

#include "daemon/media/mel.hpp"

namespace heygem::pipeline {

bool silent_window(const media::Matrix& mel, int64_t start, float threshold) {
  const int64_t end = std::min<int64_t>(start + media::kMelStepSize, mel.cols);
  for (int r = 0; r < mel.rows; ++r)
    for (int64_t c = std::max<int64_t>(start, 0); c < end; ++c)
      if (mel.at(r, static_cast<int>(c)) > threshold) return false;
  return true;
}

std::vector<float> silence_gate_weights(const media::Matrix& mel, const std::vector<int64_t>& chunk_starts,
                                        const SilenceGateOptions& options) {
  const std::size_t n = chunk_starts.size();
  std::vector<float> weights(n, 1.0f);
  if (!options.enabled || n == 0) return weights;
  std::vector<bool> gated(n, false);
  for (std::size_t i = 0; i < n;) {
    if (!silent_window(mel, chunk_starts[i], options.threshold)) {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < n && silent_window(mel, chunk_starts[end], options.threshold)) ++end;
    if (end - i >= static_cast<std::size_t>(std::max(1, options.min_frames)))
      std::fill(gated.begin() + static_cast<std::ptrdiff_t>(i), gated.begin() + static_cast<std::ptrdiff_t>(end), true);
    i = end;
  }
  // Distance (in frames) to the nearest gated frame, for the cross-fade.
  const int fade = std::max(0, options.fade_frames);
  std::vector<int> distance(n, fade + 1);
  int last = -(fade + 1);
  for (std::size_t i = 0; i < n; ++i) {
    if (gated[i]) last = static_cast<int>(i);
    distance[i] = std::min(distance[i], static_cast<int>(i) - last);
  }
  last = static_cast<int>(n) + fade + 1;
  for (std::size_t i = n; i-- > 0;) {
    if (gated[i]) last = static_cast<int>(i);
    distance[i] = std::min(distance[i], last - static_cast<int>(i));
  }
  for (std::size_t i = 0; i < n; ++i)
    weights[i] = distance[i] > fade ? 1.0f : static_cast<float>(distance[i]) / static_cast<float>(fade + 1);
  return weights;
}

}  // namespace heygem::pipeline
