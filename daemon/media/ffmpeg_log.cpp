#include "daemon/media/ffmpeg_log.hpp"

#include <cstdarg>
#include <string>

#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/log.h>
}

namespace heygem::media {
namespace {

// Per thread, so that one job's demuxer cannot explain another job's failure.
thread_local std::string first_error_line;

// "[IMGUTILS @ 0x7ffd...] Picture size ... is invalid" -> "Picture size ... is invalid"
std::string without_component_prefix(const std::string& text) {
  if (text.empty() || text.front() != '[') return text;
  const auto end = text.find("] ");
  return end == std::string::npos ? text : text.substr(end + 2);
}

spdlog::level::level_enum to_spdlog(int level) {
  if (level <= AV_LOG_FATAL) return spdlog::level::critical;
  if (level <= AV_LOG_ERROR) return spdlog::level::err;
  if (level <= AV_LOG_WARNING) return spdlog::level::warn;
  if (level <= AV_LOG_INFO) return spdlog::level::info;
  return spdlog::level::debug;
}

void forward(void* context, int level, const char* format, va_list arguments) {
  if (level > av_log_get_level()) return;
  char line[1024];
  int print_prefix = 1;  // one line per call: the prefix names the component ("[libx264 @ 0x...]")
  av_log_format_line2(context, level, format, arguments, line, sizeof line, &print_prefix);
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return;
  if (level <= AV_LOG_ERROR && first_error_line.empty()) first_error_line = without_component_prefix(text);
  spdlog::log(to_spdlog(level), "ffmpeg: {}", text);
}

}  // namespace

void forward_ffmpeg_logs(int quietest) {
  av_log_set_level(quietest);
  av_log_set_callback(forward);
}

FfmpegErrorCapture::FfmpegErrorCapture() { first_error_line.clear(); }
std::string FfmpegErrorCapture::first_error() const { return first_error_line; }

void restore_ffmpeg_logs() {
  av_log_set_callback(av_log_default_callback);
  av_log_set_level(AV_LOG_INFO);
}

}  // namespace heygem::media
