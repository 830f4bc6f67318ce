// VideoWriter: lossless round trip (exact), normal mode quality, odd sizes, timing, the AAC track
// cut to the video, +faststart, and the temporary file's life cycle.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "common/errors.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/media/video_writer.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::media {
namespace {

// Smooth gradients plus a square that moves with the frame number: easy to compress well and
// different in every frame. `noise` adds a deterministic per-pixel pattern (hard for any codec).
Frame synthetic_frame(int width, int height, int number, bool noise) {
  Frame frame;
  frame.resize(width, height);
  uint32_t state = 2166136261u + static_cast<uint32_t>(number);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* pixel = frame.row(y) + x * 3;
      const bool in_square = std::abs(x - (number * 3) % width) < width / 6 && std::abs(y - height / 2) < height / 6;
      pixel[0] = static_cast<uint8_t>(in_square ? 230 : 40 + 150 * x / width);
      pixel[1] = static_cast<uint8_t>(in_square ? 30 : 60 + 120 * y / height);
      pixel[2] = static_cast<uint8_t>(in_square ? 90 : 100 + 2 * number);
      if (noise) {
        for (int c = 0; c < 3; ++c) {
          state = state * 1664525u + 1013904223u;
          pixel[c] = static_cast<uint8_t>(state >> 24);
        }
      }
    }
  }
  return frame;
}

std::vector<Frame> write_frames(const std::filesystem::path& output, const VideoWriterOptions& options, int count, bool noise) {
  VideoWriter writer(output, options);
  std::vector<Frame> written;
  for (int i = 0; i < count; ++i) {
    written.push_back(synthetic_frame(options.width, options.height, i, noise));
    writer.write(written.back());
  }
  writer.finish();
  return written;
}

std::filesystem::path grid_audio_clip() {
  const auto meta = heygem::test::manifest("e2e").at("meta");
  return heygem::test::shared_root() / "media" / "grid" / (meta.at("audio_clips").at(0).get<std::string>() + ".mpg");
}

TEST(VideoWriter, LosslessRoundTripIsExact) {
  test::ScratchDir dir;
  for (auto [width, height] : {std::pair{64, 48}, std::pair{33, 25}}) {
    SCOPED_TRACE(std::to_string(width) + "x" + std::to_string(height));
    VideoWriterOptions options;
    options.width = width;
    options.height = height;
    options.fps = {25, 1};
    options.lossless = true;
    const auto output = dir / ("lossless" + std::to_string(width) + ".mp4");
    const auto written = write_frames(output, options, 12, true);
    const auto decoded = test::read_all_frames(output);
    ASSERT_EQ(decoded.size(), written.size());
    for (size_t i = 0; i < written.size(); ++i) EXPECT_EQ(test::packed_bgr(decoded[i]), written[i].data) << "frame " << i;
  }
}

// The top-left width x height corner of the first `count` frames of a GRID clip: real footage.
std::vector<Frame> grid_frames(int width, int height, int count) {
  VideoReader reader(grid_audio_clip());
  std::vector<Frame> frames;
  Frame source;
  while (static_cast<int>(frames.size()) < count && reader.next(source)) {
    Frame crop;
    crop.resize(width, height);
    for (int y = 0; y < height; ++y) std::memcpy(crop.row(y), source.row(y), static_cast<size_t>(width) * 3);
    frames.push_back(std::move(crop));
  }
  return frames;
}

TEST(VideoWriter, NormalModeKeepsQualitySizeTimingAndFaststart) {
  test::ScratchDir dir;
  for (auto [width, height] : {std::pair{360, 288}, std::pair{65, 49}}) {
    SCOPED_TRACE(std::to_string(width) + "x" + std::to_string(height));
    VideoWriterOptions options;
    options.width = width;
    options.height = height;
    options.fps = {30000, 1001};
    const auto output = dir / ("normal" + std::to_string(width) + ".mp4");
    const auto written = grid_frames(width, height, 15);
    {
      VideoWriter writer(output, options);
      for (const auto& frame : written) writer.write(frame);
      writer.finish();
    }
    const auto count = static_cast<int64_t>(written.size());

    const auto video = test::probe_stream(output, "video");
    EXPECT_EQ(video.codec, "h264");
    // 4:2:0 always (what players decode); an odd size loses its last column / row.
    EXPECT_EQ(video.width, width - width % 2);
    EXPECT_EQ(video.height, height - height % 2);
    EXPECT_EQ(video.pixel_format, "yuv420p");
    EXPECT_EQ(video.frames, count);
    EXPECT_NEAR(video.duration_seconds, count / options.fps.value(), 1e-6);
    EXPECT_TRUE(test::probe_stream(output, "audio").codec.empty());

    VideoReader reader(output);
    EXPECT_EQ(reader.output_fps(), options.fps);
    const auto decoded = test::read_all_frames(output);
    ASSERT_EQ(decoded.size(), written.size());
    for (size_t i = 0; i < written.size(); ++i) {
      Frame kept;  // the part of the written frame that 4:2:0 holds
      kept.resize(decoded[i].width, decoded[i].height);
      for (int y = 0; y < kept.height; ++y)
        std::memcpy(kept.row(y), written[i].row(y), static_cast<size_t>(kept.width) * 3);
      EXPECT_GT(test::psnr(decoded[i], kept), 38.0) << "frame " << i;
    }

    const auto boxes = test::mp4_top_level_boxes(output);
    const auto moov = std::find(boxes.begin(), boxes.end(), "moov");
    const auto mdat = std::find(boxes.begin(), boxes.end(), "mdat");
    ASSERT_NE(moov, boxes.end());
    ASSERT_NE(mdat, boxes.end());
    EXPECT_LT(moov - boxes.begin(), mdat - boxes.begin()) << "+faststart puts the index first";
  }
}

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Converting on a pool of threads (whole frames each) must change nothing but the speed: the file
// is byte for byte the one a single conversion thread writes, audio interleaving included.
TEST(VideoWriter, ConversionThreadsWriteTheSameFileAsOneThread) {
  test::ScratchDir dir;
  for (auto [width, height] : {std::pair{360, 288}, std::pair{65, 49}}) {
    SCOPED_TRACE(std::to_string(width) + "x" + std::to_string(height));
    const auto frames = grid_frames(width, height, 40);
    std::vector<std::string> files;
    for (int threads : {1, 3}) {
      VideoWriterOptions options;
      options.width = width;
      options.height = height;
      options.threads = 1;  // x264 unthreaded: its frame threads made 1 run in ~50 differ under load
      options.conversion_threads = threads;
      options.audio_source = grid_audio_clip();
      const auto output = dir / ("threads" + std::to_string(threads) + ".mp4");
      VideoWriter writer(output, options);
      for (const auto& frame : frames) writer.write(frame);
      writer.finish();
      files.push_back(file_bytes(output));
    }
    ASSERT_GT(files[0].size(), 1000u);
    EXPECT_TRUE(files[0] == files[1]) << "sizes " << files[0].size() << " and " << files[1].size();
  }
}

TEST(VideoWriter, AacTrackFromTheOriginalAudioIsCutToTheVideo) {
  test::ScratchDir dir;
  VideoWriterOptions options;
  options.width = 64;
  options.height = 48;
  options.fps = {25, 1};
  options.audio_source = grid_audio_clip();  // 44.1 kHz stereo MP2, about 3 s
  const auto output = dir / "with_audio.mp4";
  const int count = 40;  // 1.6 s: shorter than the audio
  write_frames(output, options, count, false);
  const auto video = test::probe_stream(output, "video");
  const auto audio = test::probe_stream(output, "audio");
  EXPECT_EQ(video.frames, count);
  EXPECT_EQ(audio.codec, "aac");
  EXPECT_EQ(audio.sample_rate, 44100);
  const double seconds = count / options.fps.value();
  EXPECT_NEAR(audio.duration_seconds, seconds, 1024.0 / audio.sample_rate) << "audio cut to the video's length";

  // a video longer than the audio: the audio just ends
  const auto longer = dir / "longer.mp4";
  write_frames(longer, options, 100, false);
  const auto long_audio = test::probe_stream(longer, "audio");
  EXPECT_LT(long_audio.duration_seconds, 100 / options.fps.value());
  EXPECT_GT(long_audio.duration_seconds, 2.5);
}

TEST(VideoWriter, UnfinishedOrFailedWritesLeaveNothingBehind) {
  test::ScratchDir dir;
  VideoWriterOptions options;
  options.width = 64;
  options.height = 48;
  const auto output = dir / "abandoned.mp4";
  {
    VideoWriter writer(output, options);
    writer.write(synthetic_frame(64, 48, 0, false));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "only the temporary file";
    EXPECT_FALSE(std::filesystem::exists(output));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  {
    VideoWriter writer(output, options);
    EXPECT_THROW(writer.write(synthetic_frame(32, 48, 0, false)), Error);
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  // an audio source without audio is refused up front, naming it
  VideoWriterOptions bad = options;
  bad.audio_source = dir / "missing-audio.wav";
  try {
    VideoWriter writer(output, bad);
    ADD_FAILURE() << "no error for a missing audio source";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_input);
    EXPECT_NE(std::string(error.what()).find("missing-audio.wav"), std::string::npos) << error.what();
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));

  VideoWriterOptions bad_preset = options;
  bad_preset.preset = "no-such-preset";
  EXPECT_THROW(VideoWriter(output, bad_preset), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(VideoWriter, FinishReplacesAnExistingTarget) {
  test::ScratchDir dir;
  VideoWriterOptions options;
  options.width = 64;
  options.height = 48;
  const auto output = dir / "out.mp4";
  write_frames(output, options, 3, false);
  write_frames(output, options, 5, false);
  EXPECT_EQ(test::probe_stream(output, "video").frames, 5);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

}  // namespace
}  // namespace heygem::media
