#pragma once
// One swscale conversion between two pixel formats of the same size, with swscale's slice threads.
// FFmpeg 5.1 threads only the frame API (sws_scale_frame), so that is what this wraps; a single
// thread converts a 720p frame in ~4 ms, which bounded the whole GPU pipeline (docs/bench.md).
// Internal to heygem_media.
#include <filesystem>

#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/media_types.hpp"

namespace heygem::media {

// The decoder's conversion to BGR24: what cv2.VideoCapture (the reference's reader) asks swscale for,
// so decoded frames are byte-identical to what the reference sees.
constexpr int kReaderSwsFlags = SWS_BICUBIC;
// The encoder's conversion from BGR24: rounding done right and full chroma input (better edges).
constexpr int kWriterSwsFlags = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INP;

// The slice threads a converter uses when asked for 0 ("auto"): half the machine, at most 8, so the
// decoder, the encoder and x264 still have cores of their own.
int automatic_conversion_threads();

// `frame`'s pixels as a read-only BGR24 AVFrame, without a copy: the Frame must outlive the result.
// (swscale refs its source; a buffer that frees nothing lets it do so.)
// `width` x `height` (0 = the frame's own) is the part from the top-left corner that is used: the
// encoder's even size for an odd frame.
ffmpeg::FramePtr borrow_bgr24(const Frame& frame, int width = 0, int height = 0);

class PixelConverter {
 public:
  // `flags`: SWS_* flags; `threads`: 0 = automatic_conversion_threads(). `file` names errors.
  PixelConverter(int flags, int threads, std::filesystem::path file);

  // Converts `source` into `destination` (same width and height, destination->format set and its
  // buffers allocated with av_frame_get_buffer). Rebuilds the context when the formats or sizes change.
  void convert(const AVFrame* source, AVFrame* destination);

  int threads() const { return threads_; }

 private:
  void configure(const AVFrame* source, const AVFrame* destination);

  int flags_;
  int threads_;
  std::filesystem::path file_;
  ffmpeg::SwsPtr context_;
  int width_ = 0, height_ = 0, source_format_ = -1, destination_format_ = -1;
};

}  // namespace heygem::media
