#pragma once
// Helpers for the media tests: a scratch folder, the ffmpeg CLI as an input generator and oracle,
// WAV samples, MP4 box order and stream facts read back with libavformat.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "daemon/media/media_types.hpp"

#include "tests/support/temp_dir.hpp"

namespace heygem::media::test {

// The shared test temp folder (tests/support/temp_dir.hpp), with `dir / "name"` for brevity.
class ScratchDir : public heygem::test::TempDir {
 public:
  std::filesystem::path operator/(const std::string& name) const { return path() / name; }
};

// The ffmpeg CLI ($HEYGEM_FFMPEG, else `ffmpeg` on PATH); true when it can be run.
bool ffmpeg_available();
// Runs `ffmpeg -nostdin -v error -y <arguments>`; throws with the command line when it fails.
void run_ffmpeg(const std::string& arguments);
// Decodes `file` with the CLI to raw BGR24 with the same swscale flags the reader uses (the oracle).
std::vector<uint8_t> ffmpeg_decode_bgr(const std::filesystem::path& file, const std::string& extra_output_args = "");
// Decodes the first audio stream of `file` with the CLI to 16 kHz mono s16 samples.
std::vector<int16_t> ffmpeg_decode_mono16k(const std::filesystem::path& file);

// Tightly packed BGR bytes of a frame (drops any row padding).
std::vector<uint8_t> packed_bgr(const Frame& frame);
double psnr(const Frame& a, const Frame& b);

// 16-bit PCM samples of a canonical WAV file (finds the "data" chunk).
std::vector<int16_t> read_wav_s16(const std::filesystem::path& file);
void write_wav_s16(const std::filesystem::path& file, const std::vector<int16_t>& samples, int sample_rate, int channels);

// Top-level MP4 box types in file order.
std::vector<std::string> mp4_top_level_boxes(const std::filesystem::path& file);

struct StreamFacts {
  std::string codec;
  double duration_seconds = 0;
  int64_t frames = 0;  // packets counted by demuxing
  int width = 0, height = 0;
  int sample_rate = 0;
  double fps = 0;  // the stream's r_frame_rate (video)
  std::string pixel_format;
};
// The first stream of the type ("video" or "audio") in `file`; codec empty when there is none.
StreamFacts probe_stream(const std::filesystem::path& file, const std::string& type);

// Reads every frame of `file` with VideoReader.
std::vector<Frame> read_all_frames(const std::filesystem::path& file, bool constant_frame_rate = true,
                                   std::optional<Rational> fps = std::nullopt);

}  // namespace heygem::media::test
