// The silence gate: the weights it derives from the mel windows, and a whole item whose audio has a
// silent stretch (source frames there, byte for byte before encoding; generated frames elsewhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>

#include "daemon/media/mel.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "daemon/pipeline/silence_gate.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

// A mel matrix whose columns are silent (-4, Wav2Lip's floor) or loud (0) as `loud` says.
media::Matrix mel_of(const std::vector<bool>& loud) {
  media::Matrix mel;
  mel.rows = media::kMelBands;
  mel.cols = static_cast<int>(loud.size());
  mel.data.assign(static_cast<std::size_t>(mel.rows) * mel.cols, -4.0f);
  for (int c = 0; c < mel.cols; ++c)
    if (loud[c])
      for (int r = 0; r < mel.rows; ++r) mel.data[static_cast<std::size_t>(r) * mel.cols + c] = 0.0f;
  return mel;
}

TEST(SilenceGate, WeightsGateLongSilentRunsAndFadeOnTheSpokenSide) {
  // One column per frame start, windows of 16 columns: frame i is silent iff columns i..i+15 are.
  std::vector<bool> loud(120, true);
  for (int c = 20; c < 60; ++c) loud[c] = false;   // frames 20..44 silent (25 frames)
  for (int c = 80; c < 97; ++c) loud[c] = false;   // frames 80..81 silent: too short to gate
  const media::Matrix mel = mel_of(loud);
  std::vector<int64_t> starts;
  for (int64_t i = 0; i + media::kMelStepSize <= mel.cols; ++i) starts.push_back(i);
  SilenceGateOptions options;  // defaults: threshold -2, 3 frames at least, 2-frame fade
  const std::vector<float> w = silence_gate_weights(mel, starts, options);
  ASSERT_EQ(w.size(), starts.size());
  for (std::size_t i = 0; i < w.size(); ++i) {
    SCOPED_TRACE(i);
    if (i >= 20 && i <= 44) EXPECT_EQ(w[i], 0.0f);
    else if (i == 19 || i == 45) EXPECT_FLOAT_EQ(w[i], 1.0f / 3);
    else if (i == 18 || i == 46) EXPECT_FLOAT_EQ(w[i], 2.0f / 3);
    else EXPECT_EQ(w[i], 1.0f);
  }
  // Longer runs only; a threshold above the loud level gates everything; disabled gates nothing.
  options.min_frames = 2;
  EXPECT_EQ(silence_gate_weights(mel, starts, options)[80], 0.0f);
  options.threshold = 0.5f;
  for (float v : silence_gate_weights(mel, starts, options)) EXPECT_EQ(v, 0.0f);
  options.enabled = false;
  for (float v : silence_gate_weights(mel, starts, options)) EXPECT_EQ(v, 1.0f);
}

const models::Wav2LipGenerator& generator() {
  static auto instance = [] {
    models::HashInitSpec spec;
    spec.seed = 1;
    spec.gain_log2["output_block.1.weight"] = -9;
    return models::Wav2LipGenerator::untrained(models::Placement{}, spec);
  }();
  return *instance;
}

struct RenderedItem {
  ItemReport report;
  std::vector<media::Frame> frames;
};

RenderedItem render(const test::TempDir& dir, const std::filesystem::path& audio, const std::filesystem::path& video,
           const ItemOptions& options) {
  RenderedItem run;
  RunHooks hooks;
  hooks.frame_tap = [&](int64_t, const media::Frame& f) { run.frames.push_back(f); };
  run.report = run_lip_sync({audio, video, dir.path() / "out.mp4", dir.path()}, options, {&generator(), nullptr}, hooks);
  return run;
}

bool same_pixels(const media::Frame& a, const media::Frame& b) {
  if (a.width != b.width || a.height != b.height) return false;
  for (int y = 0; y < a.height; ++y)
    if (std::memcmp(a.data.data() + static_cast<std::size_t>(y) * a.stride,
                    b.data.data() + static_cast<std::size_t>(y) * b.stride, static_cast<std::size_t>(a.width) * 3))
      return false;
  return true;
}

TEST(SilenceGate, SilentStretchKeepsTheSourceFramesByteForByte) {
  test::TempDir dir;
  // 2 s: tone, 0.8 s of digital silence from 0.6 s to 1.4 s, tone again.
  const auto audio = dir.path() / "pause.wav";
  media::test::run_ffmpeg("-f lavfi -i \"aevalsrc='if(between(t,0.6,1.4),0,0.5*sin(2*PI*440*t))':s=16000:d=2\" '" +
                          audio.string() + "'");
  const auto video = dir.path() / "video.mkv";
  media::test::run_ffmpeg("-f lavfi -i testsrc2=s=96x72:r=25 -frames:v 50 -c:v ffv1 '" + video.string() + "'");
  ItemOptions options;
  options.box = FaceBox{20, 68, 24, 72};
  options.encode.preset = "ultrafast";

  const RenderedItem gated = render(dir, audio, video, options);
  media::VideoReader source(video);
  std::vector<media::Frame> decoded;
  for (media::Frame f; source.next(f);) decoded.push_back(f);
  ASSERT_EQ(gated.frames.size(), static_cast<std::size_t>(gated.report.frames));
  ASSERT_EQ(gated.report.frames, 50);
  int64_t identical = 0;
  for (std::size_t i = 0; i < gated.frames.size(); ++i) {
    const bool same = same_pixels(gated.frames[i], decoded.at(i));
    identical += same;
    // Frame i's mel window spans about [0.04 i - 0.025, 0.04 i + 0.21] s: frames 16..29 lie wholly
    // inside the silence; frames up to 10 and from 36 on hear the tone, beyond the 2-frame fade.
    if (i >= 16 && i <= 29) EXPECT_TRUE(same) << "silent frame " << i << " is not the source frame";
    if (i <= 10 || i >= 36) EXPECT_FALSE(same) << "spoken frame " << i << " was not generated";
  }
  std::cout << "[silence gate] " << gated.report.frames_gated << " of " << gated.report.frames
            << " frames gated, " << identical << " identical to the source\n";
  EXPECT_EQ(gated.report.frames_gated, identical);
  EXPECT_GE(gated.report.frames_gated, 14);

  // --no-silence-gate: every frame generated.
  options.silence_gate.enabled = false;
  const RenderedItem plain = render(dir, audio, video, options);
  EXPECT_EQ(plain.report.frames_gated, 0);
  for (std::size_t i = 0; i < plain.frames.size(); ++i)
    EXPECT_FALSE(same_pixels(plain.frames[i], decoded.at(i))) << "frame " << i;

  // Outside the gated stretch and its fade the gated run is the plain run; on the fade frames it is
  // the cross-fade of the two, weight (distance to the stretch) / (fade + 1) for the generated face.
  std::vector<std::size_t> gated_frames;
  for (std::size_t i = 0; i < gated.frames.size(); ++i)
    if (same_pixels(gated.frames[i], decoded.at(i))) gated_frames.push_back(i);
  ASSERT_FALSE(gated_frames.empty());
  const int fade = SilenceGateOptions{}.fade_frames;
  int faded = 0;
  for (std::size_t i = 0; i < gated.frames.size(); ++i) {
    int distance = fade + 1;
    for (std::size_t g : gated_frames)
      distance = std::min(distance, static_cast<int>(i > g ? i - g : g - i));
    if (distance == 0) continue;
    const media::Frame &got = gated.frames[i], &generated = plain.frames[i], &source = decoded.at(i);
    if (distance > fade) {
      EXPECT_TRUE(same_pixels(got, generated)) << "frame " << i << " beyond the fade differs from the plain run";
      continue;
    }
    ++faded;
    EXPECT_FALSE(same_pixels(got, generated)) << "fade frame " << i << " is the generated frame";
    EXPECT_FALSE(same_pixels(got, source)) << "fade frame " << i << " is the source frame";
    const float weight = static_cast<float>(distance) / static_cast<float>(fade + 1);
    int worst = 0;
    for (int y = 0; y < got.height; ++y)
      for (int x = 0; x < got.width * 3; ++x) {
        const auto at = [&](const media::Frame& f) { return f.data[static_cast<std::size_t>(y) * f.stride + x]; };
        const float expected = weight * at(generated) + (1.0f - weight) * at(source);
        worst = std::max(worst, static_cast<int>(std::ceil(std::fabs(at(got) - expected))));
      }
    EXPECT_LE(worst, 1) << "fade frame " << i << " (weight " << weight << ")";
  }
  EXPECT_EQ(faded, 2 * fade) << "one gated stretch: " << fade << " fade frames on each side";
}

}  // namespace
}  // namespace heygem::pipeline
