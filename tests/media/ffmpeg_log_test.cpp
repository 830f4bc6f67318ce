// FFmpeg's log lines reach spdlog when forwarded, filtered by level.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "daemon/media/ffmpeg_log.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/media/video_writer.hpp"
#include "tests/media/media_test_support.hpp"

namespace heygem::media {
namespace {

// Captures the default logger's output for the test's lifetime, then puts everything back.
class CapturedLogs {
 public:
  CapturedLogs() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(text_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~CapturedLogs() {
    restore_ffmpeg_logs();
    spdlog::set_default_logger(previous_);
  }
  std::string text() const { return text_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream text_;
};

void encode_two_frames(const std::filesystem::path& output) {
  VideoWriterOptions options;
  options.width = 32;
  options.height = 32;
  VideoWriter writer(output, options);
  Frame frame;
  frame.resize(32, 32);
  writer.write(frame);
  writer.write(frame);
  writer.finish();
}

TEST(FfmpegLogs, ForwardedToSpdlogByLevel) {
  test::ScratchDir dir;
  {
    CapturedLogs logs;
    forward_ffmpeg_logs(32);  // AV_LOG_INFO: libx264 reports its settings at this level
    encode_two_frames(dir / "info.mp4");
    EXPECT_NE(logs.text().find("ffmpeg: [libx264 @"), std::string::npos) << logs.text();
  }
  {
    CapturedLogs logs;
    forward_ffmpeg_logs(24);  // AV_LOG_WARNING: a clean encode says nothing
    encode_two_frames(dir / "quiet.mp4");
    EXPECT_EQ(logs.text().find("libx264"), std::string::npos) << logs.text();
  }
}

// A y4m header declaring 16384x16384 over a small frame: FFmpeg refuses it with EBUSY, and says why
// only in its log. The error must carry that cause, and it must not leak into a later error.
TEST(FfmpegLogs, AnOpenFailureNamesTheCauseFfmpegLogged) {
  test::ScratchDir dir;
  const auto huge = dir / "huge_dims.y4m";
  {
    std::ofstream out(huge, std::ios::binary);
    out << "YUV4MPEG2 W16384 H16384 F25:1 Ip A1:1 C420jpeg\nFRAME\n" << std::string(64 * 64 * 3 / 2, '\x80');
  }
  // a PNG whose header declares 100000x100000: it probes without a size, and says why only in the log
  const auto huge_png = dir / "huge.png";
  media::test::run_ffmpeg("-f lavfi -i color=c=red:s=2x2 -frames:v 1 " + huge_png.string());
  {
    std::fstream patch(huge_png, std::ios::binary | std::ios::in | std::ios::out);
    patch.seekp(16);  // IHDR width and height, big-endian
    const unsigned char size[8] = {0x00, 0x01, 0x86, 0xa0, 0x00, 0x01, 0x86, 0xa0};
    patch.write(reinterpret_cast<const char*>(size), sizeof size);
  }
  const auto garbage = dir / "garbage.mp4";
  std::ofstream(garbage, std::ios::binary) << std::string(4096, '\x07');

  CapturedLogs logs;
  forward_ffmpeg_logs(24);
  try {
    VideoReader reader(huge);
    FAIL() << "opened " << huge;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("16384x16384"), std::string::npos) << e.what();
  }
  try {
    VideoReader reader(huge_png);
    FAIL() << "opened " << huge_png;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("100000x100000"), std::string::npos) << e.what();
  }
  try {
    VideoReader reader(garbage);
    FAIL() << "opened " << garbage;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("16384"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace heygem::media
