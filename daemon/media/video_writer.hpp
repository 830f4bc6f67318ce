#pragma once
// Encodes BGR24 frames once: H.264 (libx264) + AAC taken from the *original* audio file, MP4 with
// +faststart. Writes into a temporary file beside the target and renames it into place only in
// finish(); destroying an unfinished writer removes the temporary file.
//
// Pixel format: yuv420p, BT.601 limited range, tagged so. H.264 4:2:0 cannot represent an odd width
// or height, so an odd size loses its last column or row. Lossless mode is libx264rgb at qp 0 on
// bgr24: decoding returns exactly the frames written.
// The BGR -> YUV conversion runs on a pool of threads, a whole frame each, while x264 encodes the
// earlier ones (frame_conversion_pool.hpp); the pictures reach x264 in the order written.
// The AAC track is encoded while the frames arrive (up to the video's current time), so the muxer
// interleaves as it goes and memory does not grow with the length.
#include <filesystem>
#include <memory>
#include <string>

#include "daemon/media/media_types.hpp"

namespace heygem::media {

struct VideoWriterOptions {
  int width = 0;
  int height = 0;
  Rational fps{25, 1};
  int crf = 18;
  std::string preset = "veryfast";
  bool lossless = false;  // libx264rgb, qp 0, bgr24: decoding gives back exactly the frames written
  int threads = 0;        // 0 = x264's automatic choice
  // Threads converting BGR24 to the encoder's YUV, whole frames each (byte-identical to one thread);
  // 0 = half the cores, at most 8; 1 converts in the calling thread.
  int conversion_threads = 0;
  std::filesystem::path audio_source;  // file whose first audio stream becomes the AAC track (empty: none)
  double max_audio_seconds = 0;        // 0 = the video's duration: audio is cut to the frames written
};

class VideoWriter {
 public:
  // Throws heygem::Error(invalid_input / resource) naming the file on failure to open.
  VideoWriter(const std::filesystem::path& output, const VideoWriterOptions& options);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // Frames must be width x height BGR24. Taken by value: with conversion threads the frame is
  // converted after write() returns, so move it in when the caller is done with it.
  void write(Frame frame);
  // A picture converted by the caller (the GPU path): the encoder's own size (the frame size, even)
  // and format; not in lossless mode. Encoded in order after the frames written before it.
  void write(const Yuv420Picture& picture);
  // The size pictures must have: the frame size less an odd last column or row.
  int encoded_width() const;
  int encoded_height() const;
  // Flushes the encoder, muxes the audio, writes the trailer, renames into place.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace heygem::media
