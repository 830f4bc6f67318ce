// VideoReader: the GRID clips (frame-exact against the fixture's hashes), synthetic inputs made
// with the ffmpeg CLI (containers, codecs, VFR, rotation, 10-bit, odd sizes, stills; the CLI's own
// decode is the oracle) and the error cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>

#include "common/errors.hpp"
#include "common/sha256.hpp"
#include "daemon/media/video_reader.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::media {
namespace {

using test::ScratchDir;

std::filesystem::path grid_clip(const std::string& name) {
  return heygem::test::shared_root() / "media" / "grid" / (name + ".mpg");
}

// Expects an invalid_input error whose message names the file and contains `cause`.
template <typename Body>
void expect_input_error(const std::filesystem::path& file, const std::string& cause, Body body) {
  try {
    body();
    ADD_FAILURE() << "no error for " << file;
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_input) << error.what();
    const std::string message = error.what();
    EXPECT_NE(message.find(file.string()), std::string::npos) << message;
    EXPECT_NE(message.find(cause), std::string::npos) << "expected \"" << cause << "\" in: " << message;
  }
}

TEST(GridDecode, EveryClipHasTheFixtureGeometry) {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  const auto size = meta.at("frame_size_wh").get<std::vector<int>>();
  const auto frames = meta.at("video_num_frames").get<int64_t>();
  const auto fps = meta.at("video_fps_cv2").get<double>();
  int clips = 0;
  for (const auto& entry : std::filesystem::directory_iterator(heygem::test::shared_root() / "media" / "grid")) {
    if (entry.path().extension() != ".mpg") continue;
    ++clips;
    VideoReader reader(entry.path());
    EXPECT_EQ(reader.info().width, size[0]) << entry.path();
    EXPECT_EQ(reader.info().height, size[1]);
    EXPECT_DOUBLE_EQ(reader.output_fps().value(), fps);
    EXPECT_FALSE(reader.info().still_image);
    EXPECT_EQ(reader.info().rotation_degrees, 0);
    EXPECT_EQ(reader.info().frame_count_estimate, frames);
    Frame frame;
    int64_t count = 0;
    while (reader.next(frame)) {
      EXPECT_EQ(frame.index, count);
      EXPECT_EQ(frame.width, size[0]);
      EXPECT_EQ(frame.height, size[1]);
      ASSERT_GE(frame.data.size(), static_cast<size_t>(frame.stride) * frame.height);
      ++count;
    }
    EXPECT_EQ(count, frames) << entry.path();
  }
  EXPECT_GT(clips, 0);
}

// The key check: frames are byte-identical to what the reference (cv2.VideoCapture) decodes, also
// when swscale converts in slices on several threads (the GPU machine's default).
TEST(GridDecode, FramesMatchTheReferenceDecodeBitExactly) {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  std::ifstream in(heygem::test::fixtures_root() / "e2e" / "frames_sha256.json");
  const auto hashes = nlohmann::json::parse(in).at("input_frame_sha256").get<std::vector<std::string>>();
  for (const int threads : {1, 5}) {
    SCOPED_TRACE("conversion threads " + std::to_string(threads));
    VideoReaderOptions options;
    options.conversion_threads = threads;
    VideoReader reader(grid_clip(meta.at("video_clip").get<std::string>()), options);
    Frame frame;
    size_t count = 0;
    while (reader.next(frame)) {
      ASSERT_LT(count, hashes.size());
      const auto bytes = test::packed_bgr(frame);
      EXPECT_EQ(heygem::sha256_hex(bytes.data(), bytes.size()), hashes[count]) << "frame " << count;
      ++count;
    }
    EXPECT_EQ(count, hashes.size());
  }
}

TEST(GridDecode, LimitsAreCheckedUpFront) {
  const auto clip = grid_clip(heygem::test::manifest("e2e").at("meta").at("video_clip").get<std::string>());
  VideoReaderOptions narrow;
  narrow.limits.max_width = 100;
  expect_input_error(clip, "over the limit", [&] { VideoReader reader(clip, narrow); });
  VideoReaderOptions short_limit;
  short_limit.limits.max_duration_seconds = 1.0;
  expect_input_error(clip, "over the limit", [&] { VideoReader reader(clip, short_limit); });
}

TEST(GridDecode, OutputRateOptionResamplesTheTimeline) {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  const auto clip = grid_clip(meta.at("video_clip").get<std::string>());
  const auto native = test::read_all_frames(clip);
  const auto doubled = test::read_all_frames(clip, true, Rational{50, 1});
  ASSERT_EQ(doubled.size(), 2 * native.size());
  for (size_t i = 0; i < doubled.size(); ++i) EXPECT_EQ(doubled[i].data, native[i / 2].data) << i;
  // 10 fps: source frame k starts at slot round(k * 10 / 25); slot n shows the last frame starting at or before it
  const auto slower = test::read_all_frames(clip, true, Rational{10, 1});
  ASSERT_EQ(slower.size(), native.size() * 10 / 25);
  for (size_t n = 0; n < slower.size(); ++n) {
    size_t k = 0;
    while (k + 1 < native.size() && std::lround((k + 1) * 10.0 / 25.0) <= static_cast<long>(n)) ++k;
    EXPECT_EQ(slower[n].data, native[k].data) << n;
  }
}

// Synthetic inputs, generated once for the suite.
class SyntheticDecode : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::ffmpeg_available()) return;
    dir_ = std::make_unique<ScratchDir>();
  }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "the ffmpeg CLI is needed to generate the synthetic inputs";
  }
  static std::filesystem::path make(const std::string& name, const std::string& arguments) {
    const auto path = *dir_ / name;
    if (!std::filesystem::exists(path)) test::run_ffmpeg(arguments + " '" + path.string() + "'");
    return path;
  }
  // Our frames must equal the CLI's decode (same swscale conversion) byte for byte.
  static void expect_same_as_cli(const std::filesystem::path& file, int64_t expected_frames) {
    const auto frames = test::read_all_frames(file, false);
    ASSERT_EQ(static_cast<int64_t>(frames.size()), expected_frames) << file;
    const auto oracle = test::ffmpeg_decode_bgr(file, "-fps_mode passthrough");
    const size_t frame_bytes = static_cast<size_t>(frames[0].width) * frames[0].height * 3;
    ASSERT_EQ(oracle.size(), frame_bytes * frames.size()) << file;
    for (size_t i = 0; i < frames.size(); ++i) {
      const auto ours = test::packed_bgr(frames[i]);
      EXPECT_TRUE(std::equal(ours.begin(), ours.end(), oracle.begin() + static_cast<std::ptrdiff_t>(i * frame_bytes)))
          << file << " frame " << i;
    }
  }
  static inline std::unique_ptr<ScratchDir> dir_;
};

constexpr const char* kSource = "-f lavfi -i testsrc=s=64x48:r=10 -frames:v 6";

TEST_F(SyntheticDecode, ContainersAndCodecsMatchTheCliDecode) {
  struct Case {
    const char* name;
    const char* codec;
  };
  const Case cases[] = {
      {"h264.mkv", "-c:v libx264 -preset ultrafast"},
      {"h264.mp4", "-c:v libx264 -preset ultrafast -bf 2"},
      {"mpeg4.avi", "-c:v mpeg4"},
      {"mpeg2.mpg", "-c:v mpeg2video"},
      {"mjpeg.avi", "-c:v mjpeg -pix_fmt yuvj420p"},
      {"vp9.webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8"},
      {"prores.mov", "-c:v prores_ks -profile:v 3 -pix_fmt yuv422p10le"},
      {"hevc10.mp4", "-c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto file = make(c.name, std::string(kSource) + " " + c.codec);
    VideoReader reader(file);
    EXPECT_EQ(reader.info().width, 64);
    EXPECT_EQ(reader.info().height, 48);
    EXPECT_DOUBLE_EQ(reader.output_fps().value(), 10.0);
    expect_same_as_cli(file, 6);
    EXPECT_EQ(test::read_all_frames(file).size(), 6u);  // constant rate in, same frames out
  }
}

// NVDEC where a GPU and its driver are there (the GPU machine), the CPU elsewhere (CI): either way the
// frames are the CPU decode's, and a fallback says why. 8-bit streams must match exactly (H.264,
// HEVC and VP9 decoding is bit-exact, and NV12 converts as YUV 4:2:0 does); 10-bit HEVC comes back as
// P010, whose conversion may round differently: within 2 levels.
TEST_F(SyntheticDecode, NvdecDecodesTheCpuFramesOrSaysWhyNot) {
  struct Case {
    const char* name;
    const char* codec;
    int tolerance;
  };
  const Case cases[] = {
      {"nvdec-h264.mp4", "-c:v libx264 -preset ultrafast -bf 2", 0},
      {"nvdec-hevc.mp4", "-c:v libx265 -x265-params log-level=error", 0},
      {"nvdec-vp9.webm", "-c:v libvpx-vp9 -deadline realtime -cpu-used 8", 0},
      {"nvdec-hevc10.mp4", "-c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error", 2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto file = make(c.name, std::string("-f lavfi -i testsrc2=s=320x240:r=25 -frames:v 30 ") + c.codec);
    VideoReaderOptions options;
    options.nvdec_device = 0;
    VideoReader reader(file, options);
    if (!reader.hardware_decoding()) EXPECT_FALSE(reader.hardware_fallback().empty());
    std::vector<Frame> nvdec;
    for (Frame frame; reader.next(frame);) nvdec.push_back(frame);
    const auto cpu = test::read_all_frames(file);
    ASSERT_EQ(nvdec.size(), cpu.size());
    int worst = 0;
    for (size_t i = 0; i < cpu.size(); ++i) {
      const auto a = test::packed_bgr(nvdec[i]), b = test::packed_bgr(cpu[i]);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) worst = std::max(worst, std::abs(int(a[k]) - int(b[k])));
    }
    std::cout << c.name << ": " << (reader.hardware_decoding() ? "NVDEC" : "CPU (" + reader.hardware_fallback() + ")")
              << ", largest difference to the CPU decode " << worst << "\n";
    EXPECT_LE(worst, c.tolerance);
  }
}

TEST_F(SyntheticDecode, TenBitInputBecomesEightBitBgr) {
  const auto file = make("hevc10.mp4", std::string(kSource) + " -c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error");
  VideoReader reader(file);
  EXPECT_EQ(reader.info().codec_name, "hevc");
  expect_same_as_cli(file, 6);
}

TEST_F(SyntheticDecode, OddSizeKeepsItsSize) {
  const auto file = make("odd.webm", "-f lavfi -i testsrc=s=65x49:r=10 -frames:v 4 -c:v libvpx-vp9 -deadline realtime -cpu-used 8");
  const auto frames = test::read_all_frames(file);
  ASSERT_EQ(frames.size(), 4u);
  EXPECT_EQ(frames[0].width, 65);
  EXPECT_EQ(frames[0].height, 49);
  EXPECT_EQ(frames[0].stride, 65 * 3);
  expect_same_as_cli(file, 4);
}

TEST_F(SyntheticDecode, RotationMetadataIsApplied) {
  const auto plain = make("plain.mp4", std::string(kSource) + " -c:v libx264 -preset ultrafast -qp 0");
  const auto upright = test::read_all_frames(plain);
  int turns_total = 0;
  for (int tag : {90, 180, 270}) {
    SCOPED_TRACE(tag);
    // The direction a "rotate" tag ends up with depends on the muxer's matrix convention, so the
    // CLI's autorotation is the oracle for the direction and the pixels.
    const auto file = make("rotate" + std::to_string(tag) + ".mp4",
                           "-i '" + plain.string() + "' -c copy -metadata:s:v:0 rotate=" + std::to_string(tag));
    VideoReader reader(file);
    const int degrees = reader.info().rotation_degrees;
    turns_total += degrees;
    if (tag == 180) EXPECT_EQ(degrees, 180);
    EXPECT_TRUE(degrees == 90 || degrees == 180 || degrees == 270) << degrees;
    const bool swaps = degrees != 180;
    EXPECT_EQ(reader.info().width, swaps ? 48 : 64);
    EXPECT_EQ(reader.info().height, swaps ? 64 : 48);
    const auto rotated = test::read_all_frames(file);
    ASSERT_EQ(rotated.size(), upright.size());
    for (size_t i = 0; i < rotated.size(); ++i) {
      const Frame& r = rotated[i];
      const Frame& u = upright[i];
      ASSERT_EQ(r.width, reader.info().width);
      // where the upright pixel (x, y) lands after a clockwise turn by `degrees`
      for (int y = 0; y < u.height; ++y)
        for (int x = 0; x < u.width; ++x) {
          const int rx = degrees == 90 ? u.height - 1 - y : degrees == 180 ? u.width - 1 - x : y;
          const int ry = degrees == 90 ? x : degrees == 180 ? u.height - 1 - y : u.width - 1 - x;
          ASSERT_EQ(0, std::memcmp(r.row(ry) + rx * 3, u.row(y) + x * 3, 3)) << "frame " << i << " at " << x << "," << y;
        }
    }
    expect_same_as_cli(file, 6);
  }
  EXPECT_EQ(turns_total % 360, 180) << "tags 90 and 270 turn opposite ways";
}

TEST_F(SyntheticDecode, VariableFrameRateBecomesConstant) {
  // 12 pictures at times (in 1/30 s) 0..5 then every 3rd tick: 5, 8, ..., 23 -> gaps to fill
  const auto file = make("vfr.mp4", "-f lavfi -i testsrc=s=64x48:r=30 -frames:v 12 -vf \"setpts='if(lt(N,6),N,6+3*(N-6))/(30*TB)'\" "
                                    "-fps_mode passthrough -c:v libx264 -preset ultrafast -qp 0");
  std::vector<int64_t> ticks;
  for (int n = 0; n < 12; ++n) ticks.push_back(n < 6 ? n : 6 + 3 * (n - 6));
  const auto source = test::read_all_frames(file, false);
  ASSERT_EQ(source.size(), ticks.size());
  const auto cfr = test::read_all_frames(file, true, Rational{30, 1});
  // slot n shows the last picture that starts at or before tick n; the last picture lasts >= 1 tick
  ASSERT_GE(cfr.size(), static_cast<size_t>(ticks.back() + 1));
  ASSERT_LE(cfr.size(), static_cast<size_t>(ticks.back() + 4));
  for (size_t n = 0; n < cfr.size(); ++n) {
    size_t k = 0;
    while (k + 1 < ticks.size() && ticks[k + 1] <= static_cast<int64_t>(n)) ++k;
    EXPECT_EQ(cfr[n].data, source[k].data) << "slot " << n << " should show picture " << k;
    EXPECT_EQ(cfr[n].index, static_cast<int64_t>(n));
  }
  // at the stream's average rate: as many frames as the duration says, in source order
  VideoReader reader(file);
  const auto average = test::read_all_frames(file);
  EXPECT_NEAR(static_cast<double>(average.size()), reader.info().duration_seconds * reader.output_fps().value(), 1.0);
  size_t previous = 0;
  for (const auto& frame : average) {
    size_t k = 0;
    while (k < source.size() && source[k].data != frame.data) ++k;
    ASSERT_LT(k, source.size()) << "a CFR frame that is no source picture";
    EXPECT_GE(k, previous);
    previous = k;
  }
}

TEST_F(SyntheticDecode, StillImagesGiveOneFrame) {
  for (const char* name : {"still.png", "still.jpg"}) {
    SCOPED_TRACE(name);
    const auto file = make(name, "-f lavfi -i testsrc=s=64x48 -frames:v 1");
    VideoReader reader(file);
    EXPECT_TRUE(reader.info().still_image);
    EXPECT_EQ(reader.info().frame_count_estimate, 1);
    EXPECT_DOUBLE_EQ(reader.output_fps().value(), 25.0);
    expect_same_as_cli(file, 1);
    VideoReaderOptions options;
    options.output_fps = Rational{30, 1};
    EXPECT_DOUBLE_EQ(VideoReader(file, options).output_fps().value(), 30.0);
  }
}

TEST_F(SyntheticDecode, BadInputsNameTheFileAndTheCause) {
  const auto missing = *dir_ / "missing.mp4";
  expect_input_error(missing, "no such file", [&] { VideoReader reader(missing); });

  const auto empty = *dir_ / "empty.mp4";
  std::ofstream(empty).close();
  expect_input_error(empty, "empty", [&] { VideoReader reader(empty); });

  const auto noise = *dir_ / "noise.mp4";
  {
    std::mt19937 random(7);
    std::ofstream out(noise, std::ios::binary);
    for (int i = 0; i < 8192; ++i) out.put(static_cast<char>(random() & 0xFF));
  }
  expect_input_error(noise, "not a readable media file", [&] { VideoReader reader(noise); });

  const auto audio_only = make("tone.wav", "-f lavfi -i sine=f=440:d=0.5");
  expect_input_error(audio_only, "no video stream", [&] { VideoReader reader(audio_only); });

  const auto directory = dir_->path();
  expect_input_error(directory, "directory", [&] { VideoReader reader(directory); });
}

// A header that claims a million frames per second (scripts/hostile-media.sh's absurd_timebase.y4m)
// is refused up front, naming the rate; asking for an output rate renders it at that rate instead.
TEST_F(SyntheticDecode, AnAbsurdFrameRateIsRefusedUnlessAnOutputRateIsGiven) {
  const auto absurd = *dir_ / "absurd.y4m";
  {
    std::ofstream out(absurd, std::ios::binary);
    out << "YUV4MPEG2 W64 H64 F1000000:1 Ip A1:1 C420jpeg\n";
    for (int frame = 0; frame < 3; ++frame) out << "FRAME\n" << std::string(64 * 64 * 3 / 2, static_cast<char>(60 + frame));
  }
  expect_input_error(absurd, "frame rate 1000000/1 is over the limit of 240 fps", [&] { VideoReader reader(absurd); });
  VideoReaderOptions at_25;
  at_25.output_fps = Rational{25, 1};
  VideoReader reader(absurd, at_25);
  EXPECT_EQ(reader.output_fps(), (Rational{25, 1}));
  Frame frame;
  EXPECT_TRUE(reader.next(frame));
}

TEST_F(SyntheticDecode, TruncatedFilesAreRejected) {
  const auto whole = make("whole.mp4", "-f lavfi -i testsrc=s=64x48:r=10 -frames:v 20 -c:v libx264 -preset ultrafast -movflags +faststart");
  const auto size = std::filesystem::file_size(whole);
  const auto cut = *dir_ / "cut-faststart.mp4";
  std::filesystem::copy_file(whole, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, size * 3 / 4);
  expect_input_error(cut, "truncated", [&] { VideoReader reader(cut); });

  // without faststart the index sits at the end, so a cut file has no index at all
  const auto tail_index = make("tail-index.mp4", "-f lavfi -i testsrc=s=64x48:r=10 -frames:v 20 -c:v libx264 -preset ultrafast");
  const auto cut_tail = *dir_ / "cut-tail.mp4";
  std::filesystem::copy_file(tail_index, cut_tail, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut_tail, std::filesystem::file_size(tail_index) / 2);
  expect_input_error(cut_tail, "truncated", [&] { VideoReader reader(cut_tail); });
}

// NVDEC hands out NV12 (its chroma interleaved); the reader deinterleaves it so that swscale takes
// the same 4:2:0 -> BGR24 path as for a CPU decoder's planar pictures. An NV12 rawvideo file shows
// that on any machine: its frames equal those of the same pictures stored planar.
TEST(GridDecode, Nv12PicturesGiveTheFramesOfTheirPlanarTwins) {
  ScratchDir dir;
  const auto planar = dir.path() / "planar.nut", nv12 = dir.path() / "nv12.nut";
  test::run_ffmpeg("-i '" + grid_clip("lbax4n").string() + "' -frames:v 8 -an -pix_fmt yuv420p -c:v rawvideo '" +
                   planar.string() + "'");
  test::run_ffmpeg("-i '" + planar.string() + "' -pix_fmt nv12 -c:v rawvideo '" + nv12.string() + "'");
  VideoReader a(planar), b(nv12);
  Frame x, y;
  int frames = 0;
  while (a.next(x)) {
    ASSERT_TRUE(b.next(y)) << "frame " << frames;
    ASSERT_EQ(x.data, y.data) << "frame " << frames;
    ++frames;
  }
  EXPECT_EQ(frames, 8);
  EXPECT_FALSE(b.next(y));
}

}  // namespace
}  // namespace heygem::media
