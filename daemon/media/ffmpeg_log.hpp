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
// returns a generic code (EBUSY for that one). While forwarding is on, the first error-level line
// logged on this thread since the capture began is kept: the first is the cause, later ones are its
// consequences ("Invalid image size", "Could not find codec parameters"). Empty if FFmpeg logged no
// error on this thread, or if forwarding is off.
class FfmpegErrorCapture {
 public:
  FfmpegErrorCapture();  // starts afresh: what FFmpeg said before does not count
  std::string first_error() const;
};

}  // namespace heygem::media
