#include "daemon/media/video_reader.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/pixel_converter.hpp"
#include "daemon/media/stream_decoder.hpp"

extern "C" {
#include <libavutil/display.h>
#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>
}

namespace heygem::media {
namespace {

constexpr Rational kDefaultStillFps{25, 1};

constexpr size_t kRowAlign = 64;

bool valid(Rational rate) { return rate.num > 0 && rate.den > 0; }
Rational from_av(AVRational rate) { return {rate.num, rate.den}; }

// Single pictures come through the image2 demuxer or one of the "<format>_pipe" image demuxers.
bool is_still_image(const AVFormatContext* format) {
  const std::string_view name = format->iformat->name;
  return name == "image2" || (name.size() > 5 && name.substr(name.size() - 5) == "_pipe");
}

const uint8_t* display_matrix(const AVStream* stream) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
  const AVPacketSideData* side = av_packet_side_data_get(stream->codecpar->coded_side_data,
                                                         stream->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
  return side && side->size >= 9 * sizeof(int32_t) ? side->data : nullptr;
#else
  size_t size = 0;
  const uint8_t* data = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  return data && size >= 9 * sizeof(int32_t) ? data : nullptr;
#endif
}

// Clockwise rotation to apply for display, snapped to a multiple of 90 as the ffmpeg CLI does.
int rotation_degrees(const AVStream* stream) {
  const uint8_t* matrix = display_matrix(stream);
  if (!matrix) return 0;
  const double counterclockwise = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
  if (std::isnan(counterclockwise)) return 0;
  const long quarter_turns = std::lround(-counterclockwise / 90.0);
  return static_cast<int>(((quarter_turns % 4) + 4) % 4) * 90;
}

int64_t frame_duration(const AVFrame* frame) {
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 30, 100)
  return frame->duration;
#else
  return frame->pkt_duration;
#endif
}

// Rotates a packed BGR24 picture clockwise by 90, 180 or 270 degrees into `out`.
void rotate_bgr(const uint8_t* src, size_t src_stride, int width, int height, int degrees, Frame& out) {
  const bool swaps = degrees == 90 || degrees == 270;
  out.resize(swaps ? height : width, swaps ? width : height);
  for (int dy = 0; dy < out.height; ++dy) {
    uint8_t* dst_row = out.row(dy);
    for (int dx = 0; dx < out.width; ++dx) {
      int sx = dx, sy = dy;
      if (degrees == 90) {
        sx = dy;
        sy = height - 1 - dx;
      } else if (degrees == 180) {
        sx = width - 1 - dx;
        sy = height - 1 - dy;
      } else if (degrees == 270) {
        sx = width - 1 - dy;
        sy = dx;
      }
      std::memcpy(dst_row + static_cast<size_t>(dx) * 3, src + static_cast<size_t>(sy) * src_stride + sx * 3, 3);
    }
  }
}

}  // namespace

struct VideoReader::Impl {
  Impl(const std::filesystem::path& file, const VideoReaderOptions& options);

  bool next(Frame& out);

 private:
  // A decoded picture waiting for its turn on the constant-rate timeline.
  struct Pending {
    ffmpeg::FramePtr frame = ffmpeg::make_frame();
    int64_t slot = 0;      // output index at which it starts showing
    int64_t end_slot = 0;  // output index at which its duration ends (used for the last picture)
  };

  void describe();
  void check_limits() const;
  bool decode(Pending& into);
  bool next_constant_rate(Frame& out);
  bool next_as_decoded(Frame& out);
  void emit(const AVFrame* picture, Frame& out);
  void convert(const AVFrame* picture, Frame& out);
  void hand_out_device_picture(const AVFrame* picture, Frame& out);
  const AVFrame* planar_420(const AVFrame* nv12);
  // (Re)allocates `frame` as a `format` picture of `like`'s size, unless it is one already.
  void size_like(ffmpeg::FramePtr& frame, AVPixelFormat format, const AVFrame* like);

 public:
  ffmpeg::StreamDecoder decoder;
  VideoReaderOptions options;
  VideoInfo info;
  Rational fps;

 private:
  PixelConverter converter_{kReaderSwsFlags, options.conversion_threads, decoder.file()};
  // BGR24 with av_frame_get_buffer's alignment and padding: swscale's SIMD writes whole vectors
  // past the end of a row, so it converts here and the rows are then copied (or rotated) into the
  // tightly packed Frame.
  ffmpeg::FramePtr converted_ = ffmpeg::make_frame();
  // NVDEC's downloaded NV12, its chroma deinterleaved: swscale then takes the same 4:2:0 -> BGR24
  // path as for the CPU decoder's pictures, so both give the same frames.
  PixelConverter deinterleave_{SWS_POINT, 1, decoder.file()};
  ffmpeg::FramePtr planar_ = ffmpeg::make_frame();
  Pending held_, incoming_;
  bool have_held_ = false, have_incoming_ = false, held_end_known_ = false, stream_done_ = false;
  int64_t held_until_ = 0;  // held_ shows on output slots [next_index_, held_until_)
  int64_t next_index_ = 0;
  int64_t decoded_ = 0;
  int64_t first_timestamp_ = AV_NOPTS_VALUE;
  int64_t last_slot_ = -1;
};

VideoReader::Impl::Impl(const std::filesystem::path& file, const VideoReaderOptions& reader_options)
    : decoder(file, AVMEDIA_TYPE_VIDEO, reader_options.nvdec_device, reader_options.decoder_threads),
      options(reader_options) {
  describe();
  check_limits();
  decoder.keep_pictures_on_device(options.device_pictures && info.rotation_degrees == 0);
}

void VideoReader::Impl::describe() {
  const AVStream* stream = decoder.stream();
  const AVCodecParameters* par = stream->codecpar;
  info.still_image = is_still_image(decoder.format());
  info.rotation_degrees = rotation_degrees(stream);
  const bool swaps = info.rotation_degrees == 90 || info.rotation_degrees == 270;
  info.width = swaps ? par->height : par->width;
  info.height = swaps ? par->width : par->height;
  info.codec_name = avcodec_get_name(par->codec_id);
  info.average_fps = info.still_image ? Rational{0, 1} : from_av(stream->avg_frame_rate);
  info.duration_seconds = info.still_image ? 0.0 : decoder.duration_seconds();

  if (options.output_fps) {
    if (!valid(*options.output_fps))
      throw Error(ErrorCode::invalid_argument, decoder.file().string() + ": output frame rate " +
                                                   std::to_string(options.output_fps->num) + "/" +
                                                   std::to_string(options.output_fps->den) + " is not positive");
    fps = *options.output_fps;
  } else if (info.still_image) {
    fps = kDefaultStillFps;
  } else {
    const Rational guessed = from_av(av_guess_frame_rate(decoder.format(), decoder.stream(), nullptr));
    fps = valid(info.average_fps) ? info.average_fps : valid(guessed) ? guessed : kDefaultStillFps;
  }
  if (info.still_image)
    info.frame_count_estimate = 1;
  else if (info.duration_seconds > 0)
    info.frame_count_estimate = std::llround(info.duration_seconds * fps.value());
  else
    info.frame_count_estimate = stream->nb_frames;
}

void VideoReader::Impl::check_limits() const {
  const auto& file = decoder.file();
  if (info.width <= 0 || info.height <= 0)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "the video stream has no picture size" +
                     (decoder.open_diagnostic().empty() ? "" : " (" + decoder.open_diagnostic() + ")"));
  if (info.width > options.limits.max_width || info.height > options.limits.max_height)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "picture size " + std::to_string(info.width) + "x" + std::to_string(info.height) +
                     " is over the limit of " + std::to_string(options.limits.max_width) + "x" +
                     std::to_string(options.limits.max_height));
  if (info.duration_seconds > options.limits.max_duration_seconds)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "duration " + std::to_string(info.duration_seconds) + " s is over the limit of " +
                     std::to_string(options.limits.max_duration_seconds) + " s");
  if (fps.value() > options.limits.max_fps)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "frame rate " + std::to_string(fps.num) + "/" + std::to_string(fps.den) + " is over the limit of " +
                     std::to_string(static_cast<int>(options.limits.max_fps)) +
                     " fps (an output frame rate can be asked for instead)");
}

// Decodes the next picture and places it on the output timeline.
bool VideoReader::Impl::decode(Pending& into) {
  AVFrame* frame = into.frame.get();
  av_frame_unref(frame);
  if (!decoder.receive(frame)) return false;
  ++decoded_;
  const AVRational time_base = decoder.stream()->time_base;
  const int64_t timestamp = frame->best_effort_timestamp;
  if (timestamp == AV_NOPTS_VALUE || (first_timestamp_ == AV_NOPTS_VALUE && decoded_ > 1)) {
    into.slot = last_slot_ + 1;  // no timing: one picture per output slot
  } else {
    if (first_timestamp_ == AV_NOPTS_VALUE) first_timestamp_ = timestamp;
    const double seconds = static_cast<double>(timestamp - first_timestamp_) * av_q2d(time_base);
    if (seconds > options.limits.max_duration_seconds)
      ffmpeg::fail(ErrorCode::invalid_input, decoder.file(),
                   "the video runs past the duration limit of " + std::to_string(options.limits.max_duration_seconds) +
                       " s");
    into.slot = std::max<int64_t>(0, std::llround(seconds * fps.value()));
  }
  last_slot_ = into.slot;
  const int64_t duration = frame_duration(frame);
  const double duration_seconds = duration > 0                     ? static_cast<double>(duration) * av_q2d(time_base)
                                  : valid(info.average_fps) ? 1.0 / info.average_fps.value()
                                                                   : 1.0 / fps.value();
  into.end_slot = timestamp == AV_NOPTS_VALUE
                     ? into.slot + 1
                     : std::llround((static_cast<double>(timestamp - first_timestamp_) * av_q2d(time_base) +
                                     duration_seconds) * fps.value());
  return true;
}

bool VideoReader::Impl::next(Frame& out) {
  const bool produced =
      options.constant_frame_rate && !info.still_image ? next_constant_rate(out) : next_as_decoded(out);
  if (!produced && decoded_ == 0)
    ffmpeg::fail(ErrorCode::invalid_input, decoder.file(),
                 "has no decodable video frames (" + std::to_string(decoder.skipped_packets()) +
                     " corrupt packets skipped; the file may be truncated)");
  return produced;
}

bool VideoReader::Impl::next_as_decoded(Frame& out) {
  if (stream_done_ || (info.still_image && decoded_ > 0)) return false;
  if (!decode(held_)) {
    stream_done_ = true;
    return false;
  }
  emit(held_.frame.get(), out);
  return true;
}

// Variable to constant frame rate: each output slot shows the latest picture that started at or
// before it; a picture is repeated over gaps and dropped when a later one claims its slot.
bool VideoReader::Impl::next_constant_rate(Frame& out) {
  for (;;) {
    if (have_held_ && held_end_known_) {
      if (next_index_ < held_until_) {
        emit(held_.frame.get(), out);
        return true;
      }
      if (!have_incoming_) return false;
      std::swap(held_, incoming_);
      have_incoming_ = false;
      held_end_known_ = false;
    }
    if (stream_done_) return false;
    if (!decode(incoming_)) {
      stream_done_ = true;
      if (!have_held_) return false;
      // like FFmpeg's fps filter: the last picture lasts until its end time; a video is never empty
      held_until_ = std::max(held_.end_slot, next_index_ == 0 ? int64_t{1} : int64_t{0});
      held_end_known_ = true;
      continue;
    }
    if (!have_held_) {
      std::swap(held_, incoming_);
      have_held_ = true;
      continue;
    }
    have_incoming_ = true;
    held_until_ = incoming_.slot;
    held_end_known_ = true;
  }
}

void VideoReader::Impl::emit(const AVFrame* picture, Frame& out) {
  convert(picture, out);
  out.index = out.pts_index = next_index_++;
}

void VideoReader::Impl::convert(const AVFrame* picture, Frame& out) {
  const auto& file = decoder.file();
  const bool swaps = info.rotation_degrees == 90 || info.rotation_degrees == 270;
  const int shown_width = swaps ? picture->height : picture->width;
  const int shown_height = swaps ? picture->width : picture->height;
  if (shown_width > options.limits.max_width || shown_height > options.limits.max_height)
    ffmpeg::fail(ErrorCode::invalid_input, file,
                 "frame " + std::to_string(next_index_) + " has the size " + std::to_string(shown_width) + "x" +
                     std::to_string(shown_height) + ", over the limits");
  if (picture->format == AV_PIX_FMT_CUDA) {
    hand_out_device_picture(picture, out);
    return;
  }
  size_like(converted_, AV_PIX_FMT_BGR24, picture);
  if (picture->format == AV_PIX_FMT_NV12) picture = planar_420(picture);
  converter_.convert(picture, converted_.get());
  const auto stride = static_cast<size_t>(converted_->linesize[0]);
  if (info.rotation_degrees != 0) {
    rotate_bgr(converted_->data[0], stride, picture->width, picture->height, info.rotation_degrees, out);
    return;
  }
  out.resize(picture->width, picture->height);
  for (int y = 0; y < picture->height; ++y)
    std::memcpy(out.row(y), converted_->data[0] + static_cast<size_t>(y) * stride, static_cast<size_t>(out.stride));
}

void VideoReader::Impl::size_like(ffmpeg::FramePtr& frame, AVPixelFormat format, const AVFrame* like) {
  if (frame->width == like->width && frame->height == like->height) return;
  frame = ffmpeg::make_frame();
  frame->format = format;
  frame->width = like->width;
  frame->height = like->height;
  if (av_frame_get_buffer(frame.get(), static_cast<int>(kRowAlign)) < 0)
    throw Error(ErrorCode::resource, "out of memory converting a frame of " + decoder.file().string());
}

const AVFrame* VideoReader::Impl::planar_420(const AVFrame* nv12) {
  size_like(planar_, AV_PIX_FMT_YUV420P, nv12);
  deinterleave_.convert(nv12, planar_.get());
  ffmpeg::check(av_frame_copy_props(planar_.get(), nv12), ErrorCode::resource, decoder.file(), "cannot copy a picture's properties");
  return planar_.get();
}

// A new reference to the decoder's buffer travels with the frame: a picture repeated on the
// constant-rate timeline is shared, not copied.
void VideoReader::Impl::hand_out_device_picture(const AVFrame* picture, Frame& out) {
  ffmpeg::FramePtr reference(av_frame_clone(picture));
  if (!reference) throw Error(ErrorCode::resource, "out of memory referencing a picture of " + decoder.file().string());
  auto device = std::make_shared<DevicePicture>();
  device->device = *options.nvdec_device;
  device->width = picture->width;
  device->height = picture->height;
  device->luma = reference->data[0];
  device->luma_pitch = reference->linesize[0];
  device->chroma = reference->data[1];
  device->chroma_pitch = reference->linesize[1];
  device->hold = std::shared_ptr<const AVFrame>(reference.release(), ffmpeg::FrameDeleter{});
  out.width = picture->width;
  out.height = picture->height;
  out.stride = 0;
  out.data.clear();
  out.device_picture = std::move(device);
}

VideoReader::VideoReader(const std::filesystem::path& file, const VideoReaderOptions& options)
    : impl_(std::make_unique<Impl>(file, options)) {}
VideoReader::~VideoReader() = default;
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;

const VideoInfo& VideoReader::info() const { return impl_->info; }
Rational VideoReader::output_fps() const { return impl_->fps; }
bool VideoReader::next(Frame& out) { return impl_->next(out); }
bool VideoReader::hardware_decoding() const { return impl_->decoder.hardware_decoding(); }
std::string VideoReader::hardware_fallback() const { return impl_->decoder.hardware_fallback(); }

}  // namespace heygem::media
