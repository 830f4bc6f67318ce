#pragma once
// Which source video frame each output frame shows. The output is as long as the audio (one frame
// per mel chunk); a shorter video loops, a longer one is cut.
#include <cstdint>
#include <string_view>
#include <vector>

namespace heygem::pipeline {

enum class LoopMode {
  pingpong,  // 0 1 2 ... n-1 n-2 ... 1 0 1 ...: no jump cut at the loop point (default)
  forward,   // 0 1 ... n-1 0 1 ...: what the Wav2Lip reference does
};

LoopMode parse_loop_mode(std::string_view text);  // throws heygem::Error(invalid_argument)
std::string_view to_string(LoopMode mode);

enum class OutputLength {
  audio,      // as long as the audio (round(duration * fps) frames): the product's default
  reference,  // inference.py's chunk count, which stops up to ~0.2 s short of the audio's end (parity)
};

OutputLength parse_output_length(std::string_view text);  // throws heygem::Error(invalid_argument)
std::string_view to_string(OutputLength mode);

// The mel start column of every output frame. Frame i starts at int(80 * i / fps) as in the
// reference; a start whose 16 columns would run past the end takes the last 16 columns instead (the
// reference's tail rule, which the reference applies once and then stops; `audio` mode keeps
// applying it until the output covers the audio). The size of the result is the frame count.
std::vector<int64_t> frame_mel_starts(int64_t mel_columns, int64_t audio_samples, int sample_rate, double fps,
                                      OutputLength mode);

// Source frame index for output frame `output_index` of a video with `source_frames` frames.
int64_t source_frame_index(int64_t output_index, int64_t source_frames, LoopMode mode);

}  // namespace heygem::pipeline
