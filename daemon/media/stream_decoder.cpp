#include "daemon/media/stream_decoder.hpp"

#include <algorithm>
#include <system_error>

#include <spdlog/spdlog.h>

extern "C" {
#include <libavutil/hwcontext.h>
}

#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/ffmpeg_log.hpp"

namespace heygem::media::ffmpeg {
namespace {

const char* media_type_word(AVMediaType type) { return type == AVMEDIA_TYPE_AUDIO ? "audio" : "video"; }

bool is_attached_picture(const AVStream* stream) { return (stream->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0; }

// hwcontext_cuda.h's AV_CUDA_USE_PRIMARY_CONTEXT, spelled out because that header needs the CUDA
// toolkit's cuda.h: the decoder shares the device's primary context with libtorch instead of
// creating a context (and its few hundred MiB) of its own per video.
constexpr int kCudaUsePrimaryContext = 1 << 0;

// 8-bit 4:2:0 pictures only; 10-bit ones (P010) take the download and the CPU's conversion.
bool holds_nv12(const AVFrame* picture) {
  if (!picture->hw_frames_ctx) return false;
  const auto* frames = reinterpret_cast<const AVHWFramesContext*>(picture->hw_frames_ctx->data);
  return frames->sw_format == AV_PIX_FMT_NV12;
}

}  // namespace

StreamDecoder::StreamDecoder(const std::filesystem::path& file, AVMediaType type, std::optional<int> nvdec_device,
                             int threads)
    : file_(file), packet_(make_packet()) {
  open_container();
  select_stream(type);
  check_not_truncated();
  open_decoder(type == AVMEDIA_TYPE_VIDEO ? nvdec_device : std::nullopt, threads);
}

void StreamDecoder::open_container() {
  std::error_code ec;
  const auto status = std::filesystem::status(file_, ec);
  if (!std::filesystem::exists(status)) fail(ErrorCode::invalid_input, file_, "no such file");
  if (std::filesystem::is_directory(status)) fail(ErrorCode::invalid_input, file_, "is a directory, not a media file");
  if (std::filesystem::is_regular_file(status) && std::filesystem::file_size(file_, ec) == 0 && !ec)
    fail(ErrorCode::invalid_input, file_, "is empty (0 bytes)");

  AVFormatContext* raw = nullptr;
  const FfmpegErrorCapture ffmpeg_said;
  const int opened = avformat_open_input(&raw, file_.c_str(), nullptr, nullptr);
  if (opened < 0) {
    // the demuxer's own words name the cause (a picture size over FFmpeg's limits, say); the code
    // it returns often does not (EBUSY for that one)
    const std::string cause = ffmpeg_said.first_error();
    fail(ErrorCode::invalid_input, file_,
         "is not a readable media file, or is truncated" + (cause.empty() ? "" : ": " + cause), opened);
  }
  format_.reset(raw);
  check(avformat_find_stream_info(format_.get(), nullptr), ErrorCode::invalid_input, file_,
        "cannot read the stream information");
  open_diagnostic_ = ffmpeg_said.first_error();
}

void StreamDecoder::select_stream(AVMediaType type) {
  int index = av_find_best_stream(format_.get(), type, -1, -1, nullptr, 0);
  // Cover art in audio files is a one-picture "video" stream; it is not the video we want.
  if (index >= 0 && is_attached_picture(format_->streams[index])) {
    index = -1;
    for (unsigned i = 0; i < format_->nb_streams && index < 0; ++i) {
      const AVStream* candidate = format_->streams[i];
      if (candidate->codecpar->codec_type == type && !is_attached_picture(candidate)) index = static_cast<int>(i);
    }
  }
  if (index < 0) fail(ErrorCode::invalid_input, file_, std::string("has no ") + media_type_word(type) + " stream");
  stream_ = format_->streams[index];
  for (unsigned i = 0; i < format_->nb_streams; ++i)
    if (static_cast<int>(i) != index) format_->streams[i]->discard = AVDISCARD_ALL;
}

// An indexed container (mp4, mov, mkv with cues) whose last packet lies beyond the end of the
// file was cut short, e.g. by an interrupted download or copy.
void StreamDecoder::check_not_truncated() const {
  const int entries = avformat_index_get_entries_count(stream_);
  if (entries <= 0 || !format_->pb) return;
  const AVIndexEntry* last = avformat_index_get_entry(stream_, entries - 1);
  const int64_t file_bytes = avio_size(format_->pb);
  if (last && file_bytes > 0 && last->pos + last->size > file_bytes)
    fail(ErrorCode::invalid_input, file_,
         "is truncated: its index points to byte " + std::to_string(last->pos + last->size) + " but the file has " +
             std::to_string(file_bytes) + " bytes");
}

// Hardware decoding is an optimisation: whatever stands in its way is said once and the CPU decodes.
bool StreamDecoder::attach_nvdec(int device) {
  const AVCodec* decoder = codec_->codec;
  bool supported = false;
  for (int i = 0;; ++i) {
    const AVCodecHWConfig* config = avcodec_get_hw_config(decoder, i);
    if (!config) break;
    if (config->device_type == AV_HWDEVICE_TYPE_CUDA && (config->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX))
      supported = true;
  }
  if (!supported) {
    hardware_fallback_ = std::string("FFmpeg's ") + decoder->name + " decoder has no NVDEC support";
    return false;
  }
  AVBufferRef* created = nullptr;
  const int result = av_hwdevice_ctx_create(&created, AV_HWDEVICE_TYPE_CUDA, std::to_string(device).c_str(), nullptr,
                                            kCudaUsePrimaryContext);
  if (result < 0) {
    hardware_fallback_ = "the CUDA device " + std::to_string(device) + " does not open for FFmpeg (" + error_text(result) +
                         "; is the NVIDIA driver, libcuda.so.1, there?)";
    return false;
  }
  hardware_device_.reset(created);
  codec_->hw_device_ctx = av_buffer_ref(hardware_device_.get());
  if (!codec_->hw_device_ctx) throw Error(ErrorCode::resource, "out of memory attaching NVDEC for " + file_.string());
  codec_->opaque = this;
  codec_->get_format = &StreamDecoder::choose_format;
  hardware_frame_ = make_frame();
  hardware_ = true;
  return true;
}

// FFmpeg offers the CUDA format when NVDEC can take the stream; when its set-up fails (profile, bit
// depth, size) FFmpeg asks again without it, and the software format is the answer.
AVPixelFormat StreamDecoder::choose_format(AVCodecContext* codec, const AVPixelFormat* formats) {
  auto* self = static_cast<StreamDecoder*>(codec->opaque);
  for (const AVPixelFormat* format = formats; *format != AV_PIX_FMT_NONE; ++format)
    if (*format == AV_PIX_FMT_CUDA) return *format;
  if (self && !self->fell_back_) {
    self->fell_back_ = true;
    self->hardware_fallback_ = "NVDEC does not take this stream (" + std::string(avcodec_get_name(codec->codec_id)) +
                               " " + std::to_string(codec->width) + "x" + std::to_string(codec->height) + ")";
    spdlog::warn("{}: {}; decoding on the CPU", self->file_.string(), self->hardware_fallback_);
  }
  return avcodec_default_get_format(codec, formats);
}

void StreamDecoder::open_decoder(std::optional<int> nvdec_device, int threads) {
  const AVCodec* decoder = avcodec_find_decoder(stream_->codecpar->codec_id);
  if (!decoder)
    fail(ErrorCode::invalid_input, file_,
         std::string("no decoder for the codec ") + avcodec_get_name(stream_->codecpar->codec_id));
  codec_.reset(avcodec_alloc_context3(decoder));
  if (!codec_) throw Error(ErrorCode::resource, "out of memory allocating a decoder for " + file_.string());
  check(avcodec_parameters_to_context(codec_.get(), stream_->codecpar), ErrorCode::invalid_input, file_,
        "invalid codec parameters");
  codec_->pkt_timebase = stream_->time_base;
  codec_->thread_count = std::max(0, threads);  // 0: FFmpeg's automatic choice
  if (nvdec_device) {
    if (attach_nvdec(*nvdec_device))
      codec_->thread_count = 1;  // NVDEC decodes; the CPU only parses, and frame threads add delay
    else
      spdlog::warn("{}: {}; decoding on the CPU", file_.string(), hardware_fallback_);
  }
  check(avcodec_open2(codec_.get(), decoder, nullptr), ErrorCode::invalid_input, file_,
        std::string("cannot open the ") + decoder->name + " decoder");
}

double StreamDecoder::duration_seconds() const {
  if (stream_->duration != AV_NOPTS_VALUE && stream_->duration > 0)
    return static_cast<double>(stream_->duration) * av_q2d(stream_->time_base);
  if (format_->duration != AV_NOPTS_VALUE && format_->duration > 0)
    return static_cast<double>(format_->duration) / AV_TIME_BASE;
  return 0.0;
}

bool StreamDecoder::feed_decoder() {
  if (flushed_) return false;
  for (;;) {
    const int read = av_read_frame(format_.get(), packet_.get());
    if (read == AVERROR_EOF) {
      flushed_ = true;
      avcodec_send_packet(codec_.get(), nullptr);
      return true;
    }
    check(read, ErrorCode::invalid_input, file_, "read error");
    if (packet_->stream_index != stream_->index) {
      av_packet_unref(packet_.get());
      continue;
    }
    const int sent = avcodec_send_packet(codec_.get(), packet_.get());
    av_packet_unref(packet_.get());
    if (sent == AVERROR_INVALIDDATA) {
      ++skipped_packets_;
      continue;
    }
    check(sent, ErrorCode::invalid_input, file_, "decoder error");
    return true;
  }
}

bool StreamDecoder::receive(AVFrame* frame) {
  AVFrame* target = hardware_ ? hardware_frame_.get() : frame;
  for (;;) {
    const int received = avcodec_receive_frame(codec_.get(), target);
    if (received == 0) {
      if (target == frame) return true;
      av_frame_unref(frame);
      if (target->format == AV_PIX_FMT_CUDA && keep_on_device_ && holds_nv12(target)) {
        av_frame_move_ref(frame, target);
      } else if (target->format == AV_PIX_FMT_CUDA) {
        // one download of the planes (NV12: 1.5 bytes a pixel) instead of decoding on the CPU
        check(av_hwframe_transfer_data(frame, target, 0), ErrorCode::resource, file_, "cannot download an NVDEC picture");
        check(av_frame_copy_props(frame, target), ErrorCode::resource, file_, "cannot copy a picture's timing");
        av_frame_unref(target);
      } else {
        av_frame_move_ref(frame, target);
      }
      return true;
    }
    if (received == AVERROR_EOF) return false;
    if (received == AVERROR_INVALIDDATA) {
      ++skipped_packets_;
      continue;
    }
    if (received != AVERROR(EAGAIN)) fail(ErrorCode::invalid_input, file_, "decoder error", received);
    if (!feed_decoder()) return false;
  }
}

}  // namespace heygem::media::ffmpeg
