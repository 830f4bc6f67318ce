#pragma once
// Sends FFmpeg's log lines (libx264's statistics, demuxer warnings...) to spdlog's default logger
// instead of stderr, keeping those at or above `quietest` (an AV_LOG_* level; AV_LOG_WARNING = 24).
// Call once at start-up (FFmpeg's callback is process-wide); lines arrive from FFmpeg's threads.
namespace heygem::media {

void forward_ffmpeg_logs(int quietest = 24);
// Back to FFmpeg's own stderr logging at its default level.
void restore_ffmpeg_logs();

}  // namespace heygem::media
