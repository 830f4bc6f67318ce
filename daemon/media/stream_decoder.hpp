#pragma once
// One input file opened with libavformat plus a decoder for its main stream of one media type.
// Shared by the video reader, the audio reader and the writer's audio track. Internal.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "daemon/media/ffmpeg_raii.hpp"

namespace heygem::media::ffmpeg {

class StreamDecoder {
 public:
  // Throws heygem::Error(invalid_input) naming the file: missing, empty, not media, truncated
  // (its index points past the end of the file), no stream of `type`, no decoder.
  // `nvdec_device`: decode video on that GPU's NVDEC (FFmpeg's CUDA hwaccel) and hand out the
  // downloaded NV12 pictures; where the driver, the codec, the profile or the size rule it out, the
  // decoder runs on the CPU instead and hardware_fallback() says why.
  // `threads`: the decoder's threads, 0 = FFmpeg's automatic choice.
  StreamDecoder(const std::filesystem::path& file, AVMediaType type, std::optional<int> nvdec_device = std::nullopt,
                int threads = 0);

  const std::filesystem::path& file() const { return file_; }
  AVFormatContext* format() const { return format_.get(); }
  AVStream* stream() const { return stream_; }
  AVCodecContext* codec() const { return codec_.get(); }

  // The first error FFmpeg logged while opening the file and probing its streams ("" if none, or
  // if its logs are not forwarded): the cause behind a stream that probed without a picture size.
  const std::string& open_diagnostic() const { return open_diagnostic_; }

  // Duration from the stream, else the container; 0 when neither knows it.
  double duration_seconds() const;

  // Decodes the next frame into `frame`; false at the end of the stream. Corrupt packets are
  // skipped (and counted), as the ffmpeg CLI does; read errors throw.
  bool receive(AVFrame* frame);
  int64_t skipped_packets() const { return skipped_packets_; }

  // With NVDEC: hand 8-bit pictures out as they are, in GPU memory (AV_PIX_FMT_CUDA frames whose
  // planes are NV12), instead of downloading them. Other pictures are still downloaded.
  void keep_pictures_on_device(bool keep) { keep_on_device_ = keep; }

  // True while pictures come from NVDEC; false when not asked for or after a fallback.
  bool hardware_decoding() const { return hardware_ && !fell_back_; }
  // Why NVDEC is not used although it was asked for ("" otherwise).
  const std::string& hardware_fallback() const { return hardware_fallback_; }

 private:
  void open_container();
  void select_stream(AVMediaType type);
  void open_decoder(std::optional<int> nvdec_device, int threads);
  bool attach_nvdec(int device);
  static AVPixelFormat choose_format(AVCodecContext* codec, const AVPixelFormat* formats);
  void check_not_truncated() const;
  bool feed_decoder();  // false once the decoder has been flushed

  std::filesystem::path file_;
  InputFormatPtr format_;
  AVStream* stream_ = nullptr;
  CodecContextPtr codec_;
  PacketPtr packet_;
  bool flushed_ = false;
  int64_t skipped_packets_ = 0;
  std::string open_diagnostic_;
  BufferRefPtr hardware_device_;
  FramePtr hardware_frame_;  // the decoder's CUDA picture, before its download
  bool hardware_ = false;
  bool keep_on_device_ = false;
  bool fell_back_ = false;
  std::string hardware_fallback_;
};

}  // namespace heygem::media::ffmpeg
