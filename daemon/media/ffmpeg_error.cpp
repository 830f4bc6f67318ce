#include "daemon/media/ffmpeg_error.hpp"

#include "daemon/media/ffmpeg_raii.hpp"

extern "C" {
#include <libavutil/error.h>
}

namespace heygem::media::ffmpeg {

std::string error_text(int averror) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  if (av_strerror(averror, text, sizeof text) < 0) return "FFmpeg error " + std::to_string(averror);
  return text;
}

void fail(ErrorCode code, const std::filesystem::path& file, const std::string& what, int averror) {
  throw Error(code, file.string() + ": " + what + " (" + error_text(averror) + ")");
}

void fail(ErrorCode code, const std::filesystem::path& file, const std::string& what) {
  throw Error(code, file.string() + ": " + what);
}

FramePtr make_frame() {
  FramePtr frame(av_frame_alloc());
  if (!frame) throw Error(ErrorCode::resource, "out of memory allocating an AVFrame");
  return frame;
}

PacketPtr make_packet() {
  PacketPtr packet(av_packet_alloc());
  if (!packet) throw Error(ErrorCode::resource, "out of memory allocating an AVPacket");
  return packet;
}

}  // namespace heygem::media::ffmpeg
