#pragma once
// The output's AAC track, encoded from the original audio file as the video frames arrive, so the
// muxer always has both streams to interleave (its queue stays short). Internal to heygem_media.
#include <cstdint>
#include <filesystem>

#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/stream_decoder.hpp"

namespace heygem::media::ffmpeg {

class AacTrack {
 public:
  // Adds the audio stream to `muxer` (call before avformat_write_header). Throws invalid_input
  // naming `source` when it has no audio stream or cannot be decoded.
  AacTrack(const std::filesystem::path& source, AVFormatContext* muxer);

  // Encodes whole AAC frames of the source audio up to `seconds` of output.
  void encode_until(double seconds);
  // Encodes the rest up to exactly `seconds` (or the end of the source) and flushes the encoder.
  void finish(double seconds);

 private:
  int64_t samples_at(double seconds) const;
  bool fill_fifo();  // decodes one more piece of the source into the FIFO; false at its end
  void encode_samples(int count);
  void send_to_muxer(const AVFrame* frame);

  StreamDecoder source_;
  AVFormatContext* muxer_;
  AVStream* stream_ = nullptr;
  CodecContextPtr encoder_;
  SwrPtr resampler_;
  AudioFifoPtr fifo_;
  FramePtr decoded_ = make_frame();
  FramePtr converted_ = make_frame();
  FramePtr frame_ = make_frame();
  PacketPtr packet_ = make_packet();
  int64_t samples_encoded_ = 0;
  bool source_done_ = false;
};

}  // namespace heygem::media::ffmpeg
