#pragma once
// Sends FFmpeg's log lines (libx264's statistics, demuxer warnings...) to spdlog's default logger
// instead of stderr, keeping those at or above `quietest` (an AV_LOG_* level; AV_LOG_WARNING = 24).
// Call once at start-up (FFmpeg's callback is process-wide); lines arrive from FFmpeg's threads.
#include <string>

namespace heygem::media {

void forward_ffmpeg_logs(int quietest = 24);
// Back to FFmpeg's own stderr logging at its default level.
void restore_ffmpeg_logs();

// FFmpeg often says why a call failed only in its log ("Picture size 16384x16384 is invalid") and
// returns a generic code. While forwarding is on, the last error-level line logged on this thread
// is kept; an instance clears it on construction, so last_error() holds only what FFmpeg said on
// this thread since then (empty if nothing, or if forwarding is off).
class FfmpegErrorCapture {
 public:
  FfmpegErrorCapture();
  std::string last_error() const;
};

}  // namespace heygem::media
