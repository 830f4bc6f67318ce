// The lip-sync item end to end on CPU with the untrained generator: timeline (ping-pong, forward,
// cut), stills, rotation, 10-bit, VFR, frames without a face, strict mode, and a GRID clip with
// another clip's audio through RetinaFace, checked with ffprobe.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "common/errors.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

constexpr int kLevelStep = 12;  // grey level step between numbered frames

const models::Wav2LipGenerator& generator() {
  static auto instance = [] {
    models::HashInitSpec spec;
    spec.seed = 1;
    spec.gain_log2["output_block.1.weight"] = -9;
    return models::Wav2LipGenerator::untrained(models::Placement{}, spec);
  }();
  return *instance;
}

// A grey video whose frame n has luma 16 + n * kLevelStep (lossless), so the source frame of any
// output frame can be read back from a pixel outside the face box.
std::filesystem::path numbered_video(const test::TempDir& dir, int frames, const std::string& extra = "",
                                     const std::string& name = "numbered.mkv") {
  auto file = dir.path() / name;
  media::test::run_ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=25,format=gray,geq=lum='16+N*" + std::to_string(kLevelStep) +
               "'\" -frames:v " + std::to_string(frames) + " " + extra + " -c:v ffv1 '" + file.string() + "'");
  return file;
}

std::filesystem::path tone(const test::TempDir& dir, double seconds, const std::string& name = "tone.wav") {
  auto file = dir.path() / name;
  media::test::run_ffmpeg("-f lavfi -i \"sine=frequency=440:sample_rate=44100:duration=" + std::to_string(seconds) +
               "\" -ac 2 '" + file.string() + "'");
  return file;
}

int source_number(const media::Frame& frame) {
  const int grey = frame.data[0];  // top-left pixel, outside every test box
  return static_cast<int>(std::lround((grey - 16.0) / kLevelStep));
}

struct Rendered {
  ItemReport report;
  std::vector<int> sources;  // decoded source number of each output frame
  std::map<int64_t, media::Frame> frames;
};

Rendered render(const test::TempDir& dir, const std::filesystem::path& audio, const std::filesystem::path& video,
           ItemOptions options, const models::FaceDetector* detector = nullptr) {
  Rendered run;
  RunHooks hooks;
  hooks.frame_tap = [&](int64_t i, const media::Frame& f) {
    run.frames[i] = f;
    run.sources.push_back(source_number(f));
  };
  run.report = run_lip_sync({audio, video, dir.path() / "out.mp4", dir.path()}, options,
                            {&generator(), detector}, hooks);
  return run;
}

ItemOptions boxed() {
  ItemOptions options;
  options.box = FaceBox{24, 48, 32, 64};
  options.encode.preset = "ultrafast";
  return options;
}

TEST(LipSync, AudioLongerThanVideoPingPongs) {
  test::TempDir dir;
  const Rendered run = render(dir, tone(dir, 1.0), numbered_video(dir, 8), boxed());
  ASSERT_EQ(run.report.frames, static_cast<int64_t>(run.sources.size()));
  ASSERT_GT(run.report.frames, 16);
  for (size_t i = 0; i < run.sources.size(); ++i)
    EXPECT_EQ(run.sources[i], source_frame_index(static_cast<int64_t>(i), 8, LoopMode::pingpong)) << i;
  EXPECT_EQ(run.sources[8], 6);  // turned back without repeating the last frame
}

TEST(LipSync, ForwardLoopWrapsAround) {
  test::TempDir dir;
  ItemOptions options = boxed();
  options.loop = LoopMode::forward;
  const Rendered run = render(dir, tone(dir, 1.0), numbered_video(dir, 8), options);
  for (size_t i = 0; i < run.sources.size(); ++i) EXPECT_EQ(run.sources[i], static_cast<int>(i % 8)) << i;
}

TEST(LipSync, VideoLongerThanAudioIsCutAndOutputFollowsTheAudio) {
  test::TempDir dir;
  const Rendered run = render(dir, tone(dir, 0.6), numbered_video(dir, 20), boxed());
  const auto out = media::test::probe_stream(dir.path() / "out.mp4", "video");
  EXPECT_EQ(out.frames, run.report.frames);
  EXPECT_NEAR(out.frames / 25.0, 0.6, 1.0 / 25 + 1e-9);
  for (size_t i = 0; i < run.sources.size(); ++i) EXPECT_EQ(run.sources[i], static_cast<int>(i));
  EXPECT_TRUE(!media::test::probe_stream(dir.path() / "out.mp4", "audio").codec.empty());
}

TEST(LipSync, StillImageBecomesAVideoAtTheConfiguredRate) {
  test::TempDir dir;
  auto still = dir.path() / "face.png";
  media::test::run_ffmpeg("-f lavfi -i color=c=gray:s=64x48 -frames:v 1 '" + still.string() + "'");
  ItemOptions options = boxed();
  options.still_fps = 10;
  const Rendered run = render(dir, tone(dir, 1.0), still, options);
  EXPECT_DOUBLE_EQ(run.report.fps, 10.0);
  EXPECT_NEAR(static_cast<double>(run.report.frames), 10.0, 1.0);
  const auto out = media::test::probe_stream(dir.path() / "out.mp4", "video");
  EXPECT_NEAR(out.fps, 10.0, 1e-6);
  EXPECT_EQ(out.width, 64);
}

TEST(LipSync, RotatedInputIsRenderedUpright) {
  test::TempDir dir;
  auto plain = numbered_video(dir, 5, "", "plain.mkv");
  auto rotated = dir.path() / "rotated.mp4";
  auto encoded = dir.path() / "encoded.mp4";
  media::test::run_ffmpeg("-i '" + plain.string() + "' -c:v libx264 -qp 0 '" + encoded.string() + "'");
  media::test::run_ffmpeg("-i '" + encoded.string() + "' -c copy -metadata:s:v:0 rotate=90 '" + rotated.string() + "'");
  ItemOptions options = boxed();
  options.box = FaceBox{32, 56, 8, 40};  // inside the 48x64 upright frame
  const Rendered run = render(dir, tone(dir, 0.2), rotated, options);
  EXPECT_EQ(run.report.width, 48);
  EXPECT_EQ(run.report.height, 64);
  EXPECT_EQ(media::test::probe_stream(dir.path() / "out.mp4", "video").width, 48);
}

TEST(LipSync, TenBitInputIsConvertedToEightBit) {
  test::TempDir dir;
  auto ten = dir.path() / "ten.mkv";
  media::test::run_ffmpeg("-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 6 -pix_fmt yuv420p10le -c:v ffv1 '" + ten.string() + "'");
  const Rendered run = render(dir, tone(dir, 0.2), ten, boxed());
  EXPECT_EQ(run.report.frames, static_cast<int64_t>(run.frames.size()));
  EXPECT_GT(run.report.frames, 0);
}

TEST(LipSync, VariableFrameRateBecomesConstant) {
  test::TempDir dir;
  auto vfr = dir.path() / "vfr.mkv";
  // frames at irregular times: 0, 40, 120, 160, 280 ms ... (average ~25 fps over the clip)
  media::test::run_ffmpeg("-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 25 -vf \"setpts='(N+floor(N/3)*0.5)/25/TB'\" "
               "-fps_mode vfr -c:v ffv1 '" + vfr.string() + "'");
  const Rendered run = render(dir, tone(dir, 0.8), vfr, boxed());
  const auto out = media::test::probe_stream(dir.path() / "out.mp4", "video");
  EXPECT_GT(out.fps, 0);
  EXPECT_NEAR(out.frames / out.fps, 0.8, 1.0 / out.fps + 1e-6);
}

TEST(LipSync, FramesWithoutAFacePassThroughAndAreCounted) {
  test::TempDir dir;
  auto detector = models::RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth",
                                                         models::Placement{});
  auto video = numbered_video(dir, 6);
  ItemOptions options;
  options.encode.preset = "ultrafast";
  const Rendered run = render(dir, tone(dir, 0.2), video, options, detector.get());
  EXPECT_EQ(run.report.frames_without_face, run.report.frames);
  media::VideoReader source(video);
  media::Frame expected;
  for (int64_t i = 0; i < run.report.frames; ++i) {
    ASSERT_TRUE(source.next(expected));
    EXPECT_EQ(run.frames.at(i).data, expected.data) << "frame " << i << " was changed";
  }
}

TEST(LipSync, StrictModeNamesTheFirstFrameWithoutAFace) {
  test::TempDir dir;
  auto detector = models::RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth",
                                                         models::Placement{});
  ItemOptions options;
  options.strict = true;
  try {
    render(dir, tone(dir, 0.2), numbered_video(dir, 6), options, detector.get());
    FAIL() << "strict mode accepted a video without a face";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no face in source frame 0"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out.mp4"));
}

TEST(LipSync, GridClipWithAnotherClipsAudio) {
  test::TempDir dir;
  auto detector = models::RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth",
                                                         models::Placement{});
  const auto grid = test::shared_root() / "media" / "grid";
  const auto video = grid / "lbax4n.mpg", audio = grid / "bbaf2n.mpg";
  ItemOptions options;  // defaults: feather, ping-pong, RetinaFace, crf 18
  const Rendered run = render(dir, audio, video, options, detector.get());
  const auto out = media::test::probe_stream(dir.path() / "out.mp4", "video");
  const auto in = media::test::probe_stream(video, "video");
  const auto sound = media::test::probe_stream(audio, "audio");
  EXPECT_EQ(out.width, in.width);
  EXPECT_EQ(out.height, in.height);
  EXPECT_NEAR(out.fps, in.fps, 1e-6);
  EXPECT_NEAR(out.frames / out.fps, sound.duration_seconds, 1.0 / out.fps + 1e-6);
  EXPECT_TRUE(!media::test::probe_stream(dir.path() / "out.mp4", "audio").codec.empty());
  EXPECT_EQ(run.report.frames_without_face, 0);

  // Before encoding, every pixel outside the face region equals the decoded input; after the one
  // lossy encode (crf 18) the decoded MP4 stays above 40 dB there, and the mouth region changed.
  media::VideoReader source(video), rendered(dir.path() / "out.mp4");
  media::Frame a, b;
  const FaceBox face{120, 270, 100, 270};  // generous lower-face region of this clip (the feather's reach)
  double changed = 0, squared = 0;
  int64_t values = 0;
  const int frames = 30, first_spoken = 10;  // bbaf2n is silent for its first 7 frames: the gate keeps those
  for (int i = 0; i < frames && source.next(a) && rendered.next(b); ++i) {
    const media::Frame& tapped = run.frames.at(i);
    for (int y = 0; y < a.height; ++y)
      for (int x = 0; x < a.width; ++x) {
        if (y >= face.top && y < face.bottom && x >= face.left && x < face.right) continue;
        for (int c = 0; c < 3; ++c) {
          const size_t at = static_cast<size_t>(y) * a.stride + x * 3 + c;
          ASSERT_EQ(tapped.data[at], a.data[at]) << "frame " << i << " changed outside the face at " << x << "," << y;
          const double d = double(a.data[at]) - double(b.data[at]);
          squared += d * d;
          ++values;
        }
      }
    if (i < first_spoken) continue;
    for (int y = 200; y < 240; ++y)
      for (int x = 150; x < 220; ++x) changed += std::abs(a.data[y * a.stride + x * 3] - tapped.data[y * a.stride + x * 3]);
  }
  const double psnr = 10 * std::log10(255.0 * 255.0 / (squared / static_cast<double>(values)));
  std::printf("GRID: PSNR outside the face after encoding %.2f dB\n", psnr);
  EXPECT_GT(psnr, 40.0);
  EXPECT_GT(changed / ((frames - first_spoken) * 40 * 70), 2.0) << "the mouth region did not change";
}

}  // namespace
}  // namespace heygem::pipeline

namespace heygem::pipeline {
namespace {

// The GPU frame path's code (frames as tensors on the models' device, the encoder fed 4:2:0 planes
// converted there) run on the CPU: a GRID clip through RetinaFace with the silence gate, and a
// ping-pong loop (its spill) with a fixed box, must render exactly the host path's frames, and the
// decoded outputs stay within the conversions' level of each other (device_frames_test.cpp).
TEST(LipSync, TheDeviceFramePathRendersTheHostPathsFramesOnTheCpu) {
  auto detector = models::RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth",
                                                         models::Placement{});
  const auto grid = test::shared_root() / "media" / "grid";
  test::TempDir dir;
  const auto clip = dir.path() / "clip.mp4", speech = dir.path() / "speech.wav";
  media::test::run_ffmpeg("-i '" + (grid / "lbax4n.mpg").string() + "' -t 0.48 -an -c:v libx264 -preset ultrafast '" +
                          clip.string() + "'");
  media::test::run_ffmpeg("-i '" + (grid / "bbaf2n.mpg").string() + "' -t 0.96 -vn '" + speech.string() + "'");
  struct Case {
    const char* name;
    const models::FaceDetector* detector;
    ItemOptions options;
  };
  ItemOptions detected;
  detected.encode.preset = "ultrafast";
  ItemOptions fixed = detected;
  fixed.box = FaceBox{120, 270, 100, 270};
  for (Case c : {Case{"RetinaFace", detector.get(), detected}, Case{"fixed box, ping-pong", nullptr, fixed}}) {
    test::TempDir host_dir, device_dir;
    c.options.frames = FramePlacement::host;
    const Rendered host = render(host_dir, speech, clip, c.options, c.detector);
    c.options.frames = FramePlacement::models_device;
    const Rendered device = render(device_dir, speech, clip, c.options, c.detector);
    EXPECT_EQ(host.report.frame_path, "host") << c.name;
    EXPECT_EQ(device.report.frame_path, "cpu") << c.name;
    ASSERT_EQ(device.frames.size(), host.frames.size()) << c.name;
    ASSERT_GT(host.report.frames, 20) << c.name;  // 0.48 s of video, 0.96 s of audio: it loops
    for (const auto& [index, frame] : host.frames)
      ASSERT_EQ(device.frames.at(index).data, frame.data) << c.name << ": frame " << index;
    media::VideoReader host_out(host_dir.path() / "out.mp4"), device_out(device_dir.path() / "out.mp4");
    media::Frame a, b;
    int64_t decoded = 0;
    double squared = 0;
    int64_t values = 0;
    while (host_out.next(a) && device_out.next(b)) {
      ++decoded;
      for (size_t i = 0; i < a.data.size(); ++i) {
        const double d = double(a.data[i]) - double(b.data[i]);
        squared += d * d;
        ++values;
      }
    }
    EXPECT_EQ(decoded, host.report.frames) << c.name;
    const double psnr = 10 * std::log10(255.0 * 255.0 / std::max(1e-9, squared / static_cast<double>(values)));
    std::printf("%s: the two paths' decoded outputs differ by PSNR %.1f dB\n", c.name, psnr);
    EXPECT_GT(psnr, 40.0) << c.name;
  }
}

}  // namespace
}  // namespace heygem::pipeline
