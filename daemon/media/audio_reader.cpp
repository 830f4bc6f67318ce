#include "daemon/media/audio_reader.hpp"

#include <cstdint>
#include <string>

#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/stream_decoder.hpp"

extern "C" {
#include <libavutil/channel_layout.h>
}

namespace heygem::media {
namespace {

// Downmix + resample to 16 kHz mono s16 with swresample's defaults (what `ffmpeg -ac 1 -ar 16000`
// does), then float = s16 / 32768 as the reference's wav reader returns.
class MonoResampler {
 public:
  MonoResampler(const std::filesystem::path& file, int64_t max_samples) : file_(file), max_samples_(max_samples) {}

  void push(const AVFrame* frame) {
    if (!swr_ || !same_input(frame)) {
      flush();
      open(frame);
    }
    convert(const_cast<const uint8_t**>(frame->extended_data), frame->nb_samples);
  }

  // Drains the samples swresample still holds (filter delay).
  void flush() {
    if (swr_) convert(nullptr, 0);
  }

  std::vector<float> take() { return std::move(samples_); }

 private:
  bool same_input(const AVFrame* frame) const {
    return frame->format == input_format_ && frame->sample_rate == input_rate_ &&
           av_channel_layout_compare(&frame->ch_layout, &source_layout_.layout) == 0;
  }

  void open(const AVFrame* frame) {
    input_format_ = frame->format;
    input_rate_ = frame->sample_rate;
    source_layout_.copy(frame->ch_layout);
    input_layout_.assign(frame->ch_layout);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    SwrContext* raw = nullptr;
    ffmpeg::check(swr_alloc_set_opts2(&raw, &mono, AV_SAMPLE_FMT_S16, kMelSampleRate, &input_layout_.layout,
                                      static_cast<AVSampleFormat>(input_format_), input_rate_, 0, nullptr),
                  ErrorCode::invalid_input, file_, "cannot set up the audio resampler");
    swr_.reset(raw);
    ffmpeg::check(swr_init(swr_.get()), ErrorCode::invalid_input, file_,
                  "cannot resample " + std::to_string(input_rate_) + " Hz / " +
                      std::to_string(input_layout_.layout.nb_channels) + " channels to 16 kHz mono");
  }

  void convert(const uint8_t** input, int input_samples) {
    for (;;) {
      const int capacity = swr_get_out_samples(swr_.get(), input_samples);
      if (capacity <= 0) return;
      buffer_.resize(static_cast<size_t>(capacity));
      uint8_t* out = reinterpret_cast<uint8_t*>(buffer_.data());
      const int produced = ffmpeg::check(swr_convert(swr_.get(), &out, capacity, input, input_samples),
                                         ErrorCode::invalid_input, file_, "audio resampling failed");
      if (static_cast<int64_t>(samples_.size()) + produced > max_samples_)
        ffmpeg::fail(ErrorCode::invalid_input, file_,
                     "the audio is longer than the duration limit of " +
                         std::to_string(static_cast<double>(max_samples_) / kMelSampleRate) + " s");
      for (int i = 0; i < produced; ++i) samples_.push_back(static_cast<float>(buffer_[static_cast<size_t>(i)]) / 32768.0f);
      if (input) return;          // swr keeps what does not fit for the next call
      if (produced == 0) return;  // flushing: drained
    }
  }

  // A channel layout copy that releases what av_channel_layout_copy allocated.
  struct OwnedLayout {
    AVChannelLayout layout{};
    ~OwnedLayout() { av_channel_layout_uninit(&layout); }
    void copy(const AVChannelLayout& source) {
      av_channel_layout_uninit(&layout);
      av_channel_layout_copy(&layout, &source);
    }
    // As copy(), but an unspecified layout becomes the default one for its channel count.
    void assign(const AVChannelLayout& source) {
      av_channel_layout_uninit(&layout);
      if (source.order == AV_CHANNEL_ORDER_UNSPEC || source.nb_channels <= 0)
        av_channel_layout_default(&layout, source.nb_channels > 0 ? source.nb_channels : 1);
      else
        av_channel_layout_copy(&layout, &source);
    }
  };

  std::filesystem::path file_;
  int64_t max_samples_;
  ffmpeg::SwrPtr swr_;
  int input_format_ = -1;
  int input_rate_ = 0;
  OwnedLayout source_layout_;  // as the decoder reports it (compared to spot changes)
  OwnedLayout input_layout_;   // as told to swresample
  std::vector<int16_t> buffer_;
  std::vector<float> samples_;
};

}  // namespace

std::vector<float> load_audio_16k_mono(const std::filesystem::path& file, const MediaLimits& limits) {
  ffmpeg::StreamDecoder decoder(file, AVMEDIA_TYPE_AUDIO);
  const double declared = decoder.duration_seconds();
  if (declared > limits.max_duration_seconds)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "audio duration " + std::to_string(declared) + " s is over the limit of " +
                     std::to_string(limits.max_duration_seconds) + " s");
  // The header may lie (or say nothing): the decoded length is checked as well.
  const auto max_samples = static_cast<int64_t>(limits.max_duration_seconds * kMelSampleRate) + kMelSampleRate;
  MonoResampler resampler(file, max_samples);
  ffmpeg::FramePtr frame = ffmpeg::make_frame();
  while (decoder.receive(frame.get())) {
    if (frame->nb_samples > 0) resampler.push(frame.get());
    av_frame_unref(frame.get());
  }
  resampler.flush();
  std::vector<float> samples = resampler.take();
  if (samples.empty()) ffmpeg::fail(ErrorCode::invalid_input, file, "the audio is empty (zero-length audio stream)");
  return samples;
}

}  // namespace heygem::media
