#include "daemon/pipeline/timeline.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "daemon/media/mel.hpp"

#include "common/errors.hpp"

namespace heygem::pipeline {

LoopMode parse_loop_mode(std::string_view text) {
  if (text == "pingpong") return LoopMode::pingpong;
  if (text == "forward") return LoopMode::forward;
  throw Error(ErrorCode::invalid_argument, "loop: expected pingpong or forward, got '" + std::string(text) + "'");
}

std::string_view to_string(LoopMode mode) { return mode == LoopMode::pingpong ? "pingpong" : "forward"; }

OutputLength parse_output_length(std::string_view text) {
  if (text == "audio") return OutputLength::audio;
  if (text == "reference") return OutputLength::reference;
  throw Error(ErrorCode::invalid_argument, "length: expected audio or reference, got '" + std::string(text) + "'");
}

std::string_view to_string(OutputLength mode) { return mode == OutputLength::audio ? "audio" : "reference"; }

std::vector<int64_t> frame_mel_starts(int64_t mel_columns, int64_t audio_samples, int sample_rate, double fps,
                                      OutputLength mode) {
  std::vector<int64_t> starts = media::mel_chunk_starts(mel_columns, fps);
  if (mode == OutputLength::reference) return starts;
  const auto audio_frames =
      static_cast<int64_t>(std::llround(static_cast<double>(audio_samples) * fps / static_cast<double>(sample_rate)));
  const int64_t last = mel_columns - media::kMelStepSize;
  for (auto i = static_cast<int64_t>(starts.size()); i < audio_frames; ++i)
    starts.push_back(std::min(last, static_cast<int64_t>(static_cast<double>(i) * (80.0 / fps))));
  return starts;
}

int64_t source_frame_index(int64_t output_index, int64_t source_frames, LoopMode mode) {
  if (source_frames <= 0) throw Error(ErrorCode::invalid_input, "video has no frames");
  if (source_frames == 1) return 0;
  if (mode == LoopMode::forward) return output_index % source_frames;
  const int64_t period = 2 * (source_frames - 1);
  const int64_t phase = output_index % period;
  return phase < source_frames ? phase : period - phase;
}

}  // namespace heygem::pipeline
