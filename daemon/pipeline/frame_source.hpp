#pragma once
// Source frames in output order. The first pass streams from the decoder; when the audio outlasts the
// video, later passes (ping-pong or forward loops) read the frames back from an unlinked spill file,
// so memory stays bounded whatever the lengths. The spill holds BGR frames: a reader asked for
// device pictures (NVDEC's, on the GPU) gives them only where nothing is spilled.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "daemon/media/media_types.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/pipeline/timeline.hpp"

namespace heygem::pipeline {

struct SourceFrame {
  int64_t output_index = 0;
  int64_t source_index = 0;
  bool first_pass = true;  // false once the video loops: the frame was seen (and detected) before
  media::Frame frame;
};

class FrameSource {
 public:
  FrameSource(const std::filesystem::path& video, const media::VideoReaderOptions& reader_options,
              int64_t output_frames, LoopMode loop, const std::filesystem::path& scratch_dir);
  ~FrameSource();
  FrameSource(const FrameSource&) = delete;
  FrameSource& operator=(const FrameSource&) = delete;

  const media::VideoInfo& info() const;
  media::Rational fps() const;
  // The next frame in output order; false after output_frames frames.
  bool next(SourceFrame& out);
  // Number of source frames once the first pass ended (0 before).
  int64_t source_frames() const { return source_frames_; }
  // While the decoder runs: whether NVDEC decodes, else why not ("" when it was not asked for).
  bool hardware_decoding() const { return reader_ && reader_->hardware_decoding(); }
  std::string hardware_fallback() const { return reader_ ? reader_->hardware_fallback() : std::string(); }

 private:
  bool next_from_decoder(SourceFrame& out);
  void read_spilled(int64_t source_index, media::Frame& frame);
  void spill(const media::Frame& frame);
  void open_spill();
  void rebuild_spill();

  std::filesystem::path video_;
  media::VideoReaderOptions reader_options_;
  std::unique_ptr<media::VideoReader> reader_;
  int64_t output_frames_;
  LoopMode loop_;
  std::filesystem::path scratch_dir_;
  int64_t produced_ = 0;
  int64_t source_frames_ = 0;  // known once the decoder ran dry
  bool decoder_done_ = false;
  int spill_fd_ = -1;
  bool spilling_ = false;
  int width_ = 0, height_ = 0;
  media::VideoInfo info_;  // kept: the reader is released once the decoder is done
  media::Rational fps_;
};

}  // namespace heygem::pipeline
