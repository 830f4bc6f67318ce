// Issue 3's memory acceptance: a 30 s and a 120 s synthetic 1280x720 input, each rendered by the real
// pipeline (pipeline_memory_probe: hash-init generator, fixed face box, default queues, batch and
// encoder) in a process of its own, peak at the same resident memory within kGrowthMargin, and both
// stay under kPeakBoundMiB. docs/pipeline.md ("Memory") says where the peak comes from.
//
// Frame rate: every per-frame buffer (the three stage queues, the generator batch, x264's pictures)
// holds a fixed number of frames, so memory that grows with the input grows with its frame count or
// with its duration (the mel, the audio). At 25 fps the pair is 3750 frames, and the CPU generator
// does about 2 frames/s on two cores (docs/pipeline.md, "CPU speed"): half an hour. The default run
// therefore renders the same 30 s and 120 s of 720p video and audio at HEYGEM_MEMORY_FPS (default 3):
// the durations are the real ones, the frames are the same 720p frames through the same queues, the
// short input (90 frames) is longer than the ~65 frames the stages hold at once on CPU (so both runs
// peak in the steady state), and the long one has 270 frames more, so a leak of a frame, a face
// batch or an encoder picture per frame shows. The `long` variant (pipeline_memory.long.FullRate)
// runs the pair at 25 fps.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

#include "tests/integration/process.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using heygem::media::test::run_ffmpeg;

constexpr int kShortSeconds = 30, kLongSeconds = 120;
constexpr int kWidth = 1280, kHeight = 720;
constexpr const char* kFaceBox = "200,520,480,800";  // T,B,L,R: a 320x320 box inside the frame
constexpr double kGrowthMargin = 0.10;               // peak(120 s) <= peak(30 s) * (1 + margin)
constexpr long kPeakBoundMiB = 1280;                 // docs/pipeline.md: what the peak is made of

int frame_rate() {
  const char* value = std::getenv("HEYGEM_MEMORY_FPS");
  return value && *value ? std::atoi(value) : 3;
}

std::string quoted(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

struct Input {
  std::filesystem::path video, audio;
};

// testsrc2 (moving, so every frame decodes and encodes as a real picture) and a tone, `seconds` long.
Input make_input(const heygem::test::TempDir& dir, int seconds, int fps) {
  const std::string stem = std::to_string(seconds) + "s";
  Input input{dir.path() / (stem + ".mp4"), dir.path() / (stem + ".wav")};
  run_ffmpeg("-f lavfi -i testsrc2=s=" + std::to_string(kWidth) + "x" + std::to_string(kHeight) +
             ":r=" + std::to_string(fps) + " -t " + std::to_string(seconds) +
             " -c:v libx264 -preset ultrafast -pix_fmt yuv420p " + quoted(input.video));
  run_ffmpeg("-f lavfi -i sine=frequency=440:sample_rate=44100:duration=" + std::to_string(seconds) + " " +
             quoted(input.audio));
  return input;
}

struct Measured {
  long peak_kib = 0, loaded_kib = 0;
  int64_t frames = 0;
  int width = 0, height = 0;
  double wall_s = 0;
};

Measured render_in_child(const heygem::test::TempDir& dir, const Input& input, int seconds) {
  const auto output = dir.path() / (std::to_string(seconds) + "s-out.mp4");
  heygem::integration::RunOptions options;
  options.timeout = 3600s;  // the long variant at 25 fps on two busy cores
  const auto run = heygem::integration::run_process(
      {MEMORY_PROBE_BINARY, input.audio.string(), input.video.string(), output.string(), kFaceBox}, dir.path(),
      options);
  if (run.exit_code != 0 || run.out.empty())
    throw std::runtime_error("pipeline_memory_probe failed (" + std::to_string(run.exit_code) + "): " + run.err);
  const auto last_line = run.out.substr(run.out.rfind('\n', run.out.size() - 2) + 1);  // the JSON result
  const auto json = nlohmann::json::parse(last_line);
  return {json.at("peak_rss_kib").get<long>(), json.at("loaded_peak_rss_kib").get<long>(), json.at("frames").get<int64_t>(),
          json.at("width").get<int>(), json.at("height").get<int>(), json.at("wall_s").get<double>()};
}

double mib(long kib) { return static_cast<double>(kib) / 1024.0; }

TEST(MemoryBound, PeakDoesNotGrowFrom30To120Seconds) {
  if (!heygem::media::test::ffmpeg_available()) GTEST_SKIP() << "no ffmpeg CLI";
  heygem::test::TempDir dir;
  const int fps = frame_rate();
  const Input short_input = make_input(dir, kShortSeconds, fps);
  const Input long_input = make_input(dir, kLongSeconds, fps);

  const Measured short_run = render_in_child(dir, short_input, kShortSeconds);
  const Measured long_run = render_in_child(dir, long_input, kLongSeconds);
  for (const auto& [run, seconds] : {std::pair{short_run, kShortSeconds}, std::pair{long_run, kLongSeconds}}) {
    EXPECT_NEAR(run.frames, static_cast<int64_t>(seconds) * fps, 1);  // the whole input went through
    EXPECT_EQ(run.width, kWidth);
    EXPECT_EQ(run.height, kHeight);
  }
  RecordProperty("fps", fps);
  RecordProperty("peak_30s_kib", static_cast<int>(short_run.peak_kib));
  RecordProperty("peak_120s_kib", static_cast<int>(long_run.peak_kib));
  std::printf("%d fps: peak RSS %.0f MiB (30 s, %lld frames, %.0f s) vs %.0f MiB (120 s, %lld frames, %.0f s); "
              "after loading the generator %.0f / %.0f MiB\n",
              fps, mib(short_run.peak_kib), static_cast<long long>(short_run.frames), short_run.wall_s,
              mib(long_run.peak_kib), static_cast<long long>(long_run.frames), long_run.wall_s,
              mib(short_run.loaded_kib), mib(long_run.loaded_kib));

  EXPECT_LE(static_cast<double>(long_run.peak_kib), static_cast<double>(short_run.peak_kib) * (1 + kGrowthMargin))
      << "peak RSS grew with the input's length";
  EXPECT_LE(mib(short_run.peak_kib), kPeakBoundMiB);
  EXPECT_LE(mib(long_run.peak_kib), kPeakBoundMiB);
}

}  // namespace
