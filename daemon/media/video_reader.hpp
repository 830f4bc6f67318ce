#pragma once
// Decodes a video file or a still image into BGR24 frames on a constant-frame-rate timeline.
// Honours rotation metadata (display matrix), converts any pixel format (10-bit, yuv444, rgb, pal8)
// to 8-bit BGR, and turns variable frame rate into constant by duplicating/dropping frames at the
// output rate (default: the stream's average rate). FFmpeg types stay inside the .cpp.
// Colour conversion is the one cv2.VideoCapture asks swscale for (SWS_BICUBIC, default BT.601
// matrix), so frames are byte-identical to what the reference implementation reads. VFR -> CFR
// follows FFmpeg's fps filter: output slot n shows the latest picture whose timestamp rounds to
// a slot <= n; the last picture lasts until its own end time.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "daemon/media/media_types.hpp"

namespace heygem::media {

struct VideoReaderOptions {
  bool constant_frame_rate = true;
  std::optional<Rational> output_fps;  // default: the stream's average frame rate
  MediaLimits limits;
  int conversion_threads = 0;  // swscale slice threads for YUV -> BGR; 0 = half the cores, at most 8
  int decoder_threads = 0;     // FFmpeg's decoder threads; 0 = its automatic choice
  // Decode on this GPU's NVDEC (the pipeline asks for its generator's GPU); the pictures are
  // downloaded once and converted as the CPU path converts them. Streams NVDEC cannot take, or a
  // machine without the driver, decode on the CPU (logged once per video).
  std::optional<int> nvdec_device;
  // With NVDEC: hand the pictures out in GPU memory (Frame::device_picture, NV12) instead of
  // downloading and converting them; the caller converts them on the GPU. Rotated videos and
  // pictures NVDEC does not give as 8-bit NV12 still come as BGR24 frames.
  bool device_pictures = false;
};

struct VideoInfo {
  int width = 0;              // after rotation
  int height = 0;
  int rotation_degrees = 0;   // 0, 90, 180 or 270 (clockwise as displayed)
  bool still_image = false;   // png/jpg/bmp/webp... (one picture)
  Rational average_fps;       // as the container reports it (0/1 for stills)
  double duration_seconds = 0;
  int64_t frame_count_estimate = 0;  // from duration * fps; 1 for stills
  std::string codec_name;
};

class VideoReader {
 public:
  // Throws heygem::Error(invalid_input) naming the file and the cause: unreadable, not media,
  // no video stream, dimensions or duration over the limits.
  VideoReader(const std::filesystem::path& file, const VideoReaderOptions& options = {});
  ~VideoReader();
  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;

  const VideoInfo& info() const;
  Rational output_fps() const;  // the rate next() delivers frames at (stills: options or 25)
  // The next frame in display order; false at the end. A still image yields exactly one frame.
  // Throws heygem::Error(invalid_input) on a decode error that leaves no usable frame.
  bool next(Frame& out);
  // True while NVDEC decodes this video (asked for and not fallen back).
  bool hardware_decoding() const;
  // Why NVDEC was not used although asked for ("" otherwise).
  std::string hardware_fallback() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace heygem::media
