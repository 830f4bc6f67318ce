#include "daemon/media/stream_decoder.hpp"

#include <system_error>

#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/ffmpeg_log.hpp"

namespace heygem::media::ffmpeg {
namespace {

const char* media_type_word(AVMediaType type) { return type == AVMEDIA_TYPE_AUDIO ? "audio" : "video"; }

bool is_attached_picture(const AVStream* stream) { return (stream->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0; }

}  // namespace

StreamDecoder::StreamDecoder(const std::filesystem::path& file, AVMediaType type)
    : file_(file), packet_(make_packet()) {
  open_container();
  select_stream(type);
  check_not_truncated();
  open_decoder();
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

void StreamDecoder::open_decoder() {
  const AVCodec* decoder = avcodec_find_decoder(stream_->codecpar->codec_id);
  if (!decoder)
    fail(ErrorCode::invalid_input, file_,
         std::string("no decoder for the codec ") + avcodec_get_name(stream_->codecpar->codec_id));
  codec_.reset(avcodec_alloc_context3(decoder));
  if (!codec_) throw Error(ErrorCode::resource, "out of memory allocating a decoder for " + file_.string());
  check(avcodec_parameters_to_context(codec_.get(), stream_->codecpar), ErrorCode::invalid_input, file_,
        "invalid codec parameters");
  codec_->pkt_timebase = stream_->time_base;
  codec_->thread_count = 0;  // FFmpeg's automatic choice
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
  for (;;) {
    const int received = avcodec_receive_frame(codec_.get(), frame);
    if (received == 0) return true;
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
