// FFmpeg's log lines reach spdlog when forwarded, filtered by level.
#include <gtest/gtest.h>

#include <memory>
#include <sstream>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "daemon/media/ffmpeg_log.hpp"
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

}  // namespace
}  // namespace heygem::media
