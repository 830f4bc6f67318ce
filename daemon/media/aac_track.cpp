#include "daemon/media/aac_track.hpp"

#include <algorithm>
#include <cmath>

#include "daemon/media/ffmpeg_error.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
}

namespace heygem::media::ffmpeg {
namespace {

constexpr int64_t kBitsPerSecondPerChannel = 96000;

// The source's rate when the encoder supports it, else the highest supported rate below it
// (else the lowest supported one).
int choose_sample_rate(const AVCodec* encoder, int source_rate) {
  if (!encoder->supported_samplerates) return source_rate;
  int below = 0, lowest = 0;
  for (const int* rate = encoder->supported_samplerates; *rate; ++rate) {
    if (*rate == source_rate) return source_rate;
    if (*rate < source_rate) below = std::max(below, *rate);
    lowest = lowest == 0 ? *rate : std::min(lowest, *rate);
  }
  return below > 0 ? below : lowest;
}

}  // namespace

AacTrack::AacTrack(const std::filesystem::path& source, AVFormatContext* muxer)
    : source_(source, AVMEDIA_TYPE_AUDIO), muxer_(muxer) {
  const AVCodec* encoder = avcodec_find_encoder(AV_CODEC_ID_AAC);
  if (!encoder) throw Error(ErrorCode::internal, "this FFmpeg build has no AAC encoder");
  encoder_.reset(avcodec_alloc_context3(encoder));
  if (!encoder_) throw Error(ErrorCode::resource, "out of memory allocating the AAC encoder");

  const AVCodecContext* decoder = source_.codec();
  const int channels = decoder->ch_layout.nb_channels >= 2 ? 2 : 1;  // more than stereo is downmixed
  av_channel_layout_default(&encoder_->ch_layout, channels);
  encoder_->sample_fmt = AV_SAMPLE_FMT_FLTP;
  encoder_->sample_rate = choose_sample_rate(encoder, decoder->sample_rate > 0 ? decoder->sample_rate : 48000);
  encoder_->bit_rate = kBitsPerSecondPerChannel * channels;
  encoder_->time_base = {1, encoder_->sample_rate};
  if (muxer_->oformat->flags & AVFMT_GLOBALHEADER) encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  check(avcodec_open2(encoder_.get(), encoder, nullptr), ErrorCode::internal, source, "cannot open the AAC encoder");

  stream_ = avformat_new_stream(muxer_, nullptr);
  if (!stream_) throw Error(ErrorCode::resource, "out of memory adding the audio stream");
  check(avcodec_parameters_from_context(stream_->codecpar, encoder_.get()), ErrorCode::internal, source,
        "cannot describe the AAC stream");
  stream_->time_base = encoder_->time_base;

  fifo_.reset(av_audio_fifo_alloc(encoder_->sample_fmt, channels, encoder_->frame_size > 0 ? encoder_->frame_size : 1024));
  if (!fifo_) throw Error(ErrorCode::resource, "out of memory allocating the audio FIFO");
  resampler_.reset(swr_alloc());
  if (!resampler_) throw Error(ErrorCode::resource, "out of memory allocating the audio resampler");
}

int64_t AacTrack::samples_at(double seconds) const {
  return std::max<int64_t>(0, std::llround(seconds * encoder_->sample_rate));
}

bool AacTrack::fill_fifo() {
  if (source_done_) return false;
  av_frame_unref(converted_.get());
  converted_->format = encoder_->sample_fmt;
  converted_->sample_rate = encoder_->sample_rate;
  check(av_channel_layout_copy(&converted_->ch_layout, &encoder_->ch_layout), ErrorCode::resource,
        source_.file(), "cannot copy the channel layout");

  av_frame_unref(decoded_.get());
  const bool got = source_.receive(decoded_.get());
  if (!got && !swr_is_initialized(resampler_.get())) {  // the source had no samples at all
    source_done_ = true;
    return false;
  }
  if (got && decoded_->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
    av_channel_layout_default(&decoded_->ch_layout, decoded_->ch_layout.nb_channels);
  int converted = swr_convert_frame(resampler_.get(), converted_.get(), got ? decoded_.get() : nullptr);
  if (converted == AVERROR_INPUT_CHANGED) {
    // the source changed rate or layout mid-stream: start a resampler configured for the new input
    swr_close(resampler_.get());
    av_frame_unref(converted_.get());
    converted_->format = encoder_->sample_fmt;
    converted_->sample_rate = encoder_->sample_rate;
    av_channel_layout_copy(&converted_->ch_layout, &encoder_->ch_layout);
    converted = swr_convert_frame(resampler_.get(), converted_.get(), decoded_.get());
  }
  check(converted, ErrorCode::invalid_input, source_.file(), "audio resampling failed");
  if (!got) source_done_ = true;
  if (converted_->nb_samples > 0 &&
      av_audio_fifo_write(fifo_.get(), reinterpret_cast<void**>(converted_->extended_data), converted_->nb_samples) <
          converted_->nb_samples)
    throw Error(ErrorCode::resource, "out of memory buffering audio from " + source_.file().string());
  return got || converted_->nb_samples > 0;
}

void AacTrack::encode_samples(int count) {
  av_frame_unref(frame_.get());
  frame_->nb_samples = count;
  frame_->format = encoder_->sample_fmt;
  frame_->sample_rate = encoder_->sample_rate;
  check(av_channel_layout_copy(&frame_->ch_layout, &encoder_->ch_layout), ErrorCode::resource, source_.file(),
        "cannot copy the channel layout");
  check(av_frame_get_buffer(frame_.get(), 0), ErrorCode::resource, source_.file(), "cannot allocate audio samples");
  if (av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame_->extended_data), count) < count)
    throw Error(ErrorCode::internal, "audio FIFO underrun");
  frame_->pts = samples_encoded_;
  samples_encoded_ += count;
  send_to_muxer(frame_.get());
}

void AacTrack::send_to_muxer(const AVFrame* frame) {
  check(avcodec_send_frame(encoder_.get(), frame), ErrorCode::internal, source_.file(), "AAC encoding failed");
  for (;;) {
    const int received = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (received == AVERROR(EAGAIN) || received == AVERROR_EOF) return;
    check(received, ErrorCode::internal, source_.file(), "AAC encoding failed");
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, stream_->time_base);
    packet_->stream_index = stream_->index;
    check(av_interleaved_write_frame(muxer_, packet_.get()), ErrorCode::resource, source_.file(),
          "cannot write the audio to the output");
  }
}

void AacTrack::encode_until(double seconds) {
  const int64_t target = samples_at(seconds);
  const int frame_size = encoder_->frame_size;
  while (samples_encoded_ + frame_size <= target) {
    while (av_audio_fifo_size(fifo_.get()) < frame_size)
      if (!fill_fifo()) return;
    encode_samples(frame_size);
  }
}

void AacTrack::finish(double seconds) {
  encode_until(seconds);
  const int64_t target = samples_at(seconds);
  const int64_t rest = target - samples_encoded_;  // less than one frame now
  if (rest > 0) {
    while (av_audio_fifo_size(fifo_.get()) < rest && fill_fifo()) {
    }
    const int count = static_cast<int>(std::min<int64_t>(rest, av_audio_fifo_size(fifo_.get())));
    if (count > 0) encode_samples(count);
  }
  send_to_muxer(nullptr);
}

}  // namespace heygem::media::ffmpeg
