#pragma once
// Which source video frame each output frame shows. The output is as long as the audio (one frame
// per mel chunk); a shorter video loops, a longer one is cut.
#include <cstdint>
#include <string_view>

namespace heygem::pipeline {

enum class LoopMode {
  pingpong,  // 0 1 2 ... n-1 n-2 ... 1 0 1 ...: no jump cut at the loop point (default)
  forward,   // 0 1 ... n-1 0 1 ...: what the Wav2Lip reference does
};

LoopMode parse_loop_mode(std::string_view text);  // throws heygem::Error(invalid_argument)
std::string_view to_string(LoopMode mode);

// Source frame index for output frame `output_index` of a video with `source_frames` frames.
int64_t source_frame_index(int64_t output_index, int64_t source_frames, LoopMode mode);

}  // namespace heygem::pipeline
