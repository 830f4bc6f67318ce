#pragma once
// Test-only helpers around the ffmpeg / ffprobe programs: synthetic inputs and independent probes of
// our outputs (so a test never checks our decoder with our decoder alone).
#include <filesystem>
#include <string>

namespace heygem::test {

// Runs `ffmpeg -hide_banner -loglevel error -y <args>`; throws with the command line on failure.
void ffmpeg(const std::string& args);

struct ProbedStream {
  bool present = false;
  std::string codec;
  int width = 0, height = 0;
  double fps = 0;        // r_frame_rate
  double duration = 0;   // seconds
  long long frames = 0;  // counted by decoding (video only)
};

// ffprobe of the first video / audio stream of `file`.
ProbedStream probe_video(const std::filesystem::path& file);
ProbedStream probe_audio(const std::filesystem::path& file);

}  // namespace heygem::test
