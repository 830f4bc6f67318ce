#include "daemon/pipeline/timeline.hpp"

#include <string>

#include "common/errors.hpp"

namespace heygem::pipeline {

LoopMode parse_loop_mode(std::string_view text) {
  if (text == "pingpong") return LoopMode::pingpong;
  if (text == "forward") return LoopMode::forward;
  throw Error(ErrorCode::invalid_argument, "loop: expected pingpong or forward, got '" + std::string(text) + "'");
}

std::string_view to_string(LoopMode mode) { return mode == LoopMode::pingpong ? "pingpong" : "forward"; }

int64_t source_frame_index(int64_t output_index, int64_t source_frames, LoopMode mode) {
  if (source_frames <= 0) throw Error(ErrorCode::invalid_input, "video has no frames");
  if (source_frames == 1) return 0;
  if (mode == LoopMode::forward) return output_index % source_frames;
  const int64_t period = 2 * (source_frames - 1);
  const int64_t phase = output_index % period;
  return phase < source_frames ? phase : period - phase;
}

}  // namespace heygem::pipeline
