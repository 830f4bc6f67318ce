#include "daemon/media/video_writer.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

#include "daemon/media/aac_track.hpp"
#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/frame_conversion_pool.hpp"
#include "daemon/media/pixel_converter.hpp"

namespace heygem::media {
namespace {

// A file beside the target that is removed unless it was renamed into place.
class TempFile {
 public:
  explicit TempFile(const std::filesystem::path& target) {
    const auto directory = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    std::string pattern = (directory / ("." + target.filename().string() + ".XXXXXX.part")).string();
    const int fd = ::mkstemps(pattern.data(), 5);
    if (fd < 0)
      throw Error(ErrorCode::resource, target.string() + ": cannot create a temporary file in " + directory.string() +
                                           " (" + std::strerror(errno) + ")");
    ::close(fd);
    path_ = pattern;
  }
  ~TempFile() {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove(path_, ignored);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void rename_to(const std::filesystem::path& target) {
    std::error_code ec;
    std::filesystem::rename(path_, target, ec);
    if (ec) throw Error(ErrorCode::resource, target.string() + ": cannot move the finished file into place (" + ec.message() + ")");
    path_.clear();
  }

 private:
  std::filesystem::path path_;
};

bool even(int value) { return value % 2 == 0; }

}  // namespace

struct VideoWriter::Impl {
  Impl(const std::filesystem::path& output, const VideoWriterOptions& options);
  void write(Frame frame);
  void write(const Yuv420Picture& picture);
  void finish();
  int encoded_width() const { return encoder_->width; }
  int encoded_height() const { return encoder_->height; }

 private:
  void validate() const;
  void open_muxer();
  void add_video_stream();
  void write_header();
  void check_frame(const Frame& frame) const;
  void fill_picture(const Frame& frame);
  void encode_picture(AVFrame* picture);
  void encode(const AVFrame* picture);
  double seconds_written() const { return static_cast<double>(frames_written_) / options_.fps.value(); }
  double audio_seconds(double video_seconds) const {
    return options_.max_audio_seconds > 0 ? std::min(options_.max_audio_seconds, video_seconds) : video_seconds;
  }

  std::filesystem::path output_;
  VideoWriterOptions options_;
  TempFile temp_;  // declared before the muxer: removed only after the muxer closed it
  ffmpeg::OutputFormatPtr muxer_;
  ffmpeg::CodecContextPtr encoder_;
  AVStream* stream_ = nullptr;
  std::optional<ffmpeg::AacTrack> audio_;
  // Each converter uses one swscale thread: FFmpeg 5.1's slice-threaded scaled path (the BGR -> YUV
  // conversion with these flags) gave a frame that differed from the one-thread result in 1 of 7 runs
  // under load (65x49, yuv444p). Parallelism comes from whole frames on the pool's threads instead.
  PixelConverter converter_{kWriterSwsFlags, 1, output_};
  std::optional<FrameConversionPool> pool_;  // with conversion threads > 1
  ffmpeg::FramePtr picture_ = ffmpeg::make_frame();
  ffmpeg::PacketPtr packet_ = ffmpeg::make_packet();
  int64_t frames_submitted_ = 0;
  int64_t frames_written_ = 0;
  bool finished_ = false;
};

VideoWriter::Impl::Impl(const std::filesystem::path& output, const VideoWriterOptions& options)
    : output_(output), options_(options), temp_((validate(), output)) {
  open_muxer();
  add_video_stream();
  const int conversion_threads =
      options_.conversion_threads > 0 ? options_.conversion_threads : automatic_conversion_threads();
  if (!options_.lossless && conversion_threads > 1)
    pool_.emplace(conversion_threads, kWriterSwsFlags,
                  PictureFormat{encoder_->width, encoder_->height, encoder_->pix_fmt}, output_);
  if (!options_.audio_source.empty()) audio_.emplace(options_.audio_source, muxer_.get());
  write_header();
}

void VideoWriter::Impl::validate() const {
  auto bad = [&](const std::string& what) { throw Error(ErrorCode::invalid_argument, output_.string() + ": " + what); };
  if (options_.width <= 0 || options_.height <= 0 || (!options_.lossless && (options_.width < 2 || options_.height < 2)))
    bad("invalid output size " + std::to_string(options_.width) + "x" + std::to_string(options_.height) +
        (options_.lossless ? "" : " (4:2:0 needs at least 2x2)"));
  if (options_.fps.num <= 0 || options_.fps.den <= 0)
    bad("invalid frame rate " + std::to_string(options_.fps.num) + "/" + std::to_string(options_.fps.den));
  if (options_.crf < 0 || options_.crf > 51) bad("crf " + std::to_string(options_.crf) + " is outside 0..51");
  if (options_.preset.empty()) bad("empty x264 preset");
  if (options_.threads < 0) bad("negative encoder thread count");
  if (options_.conversion_threads < 0) bad("negative conversion thread count");
}

void VideoWriter::Impl::open_muxer() {
  AVFormatContext* raw = nullptr;
  ffmpeg::check(avformat_alloc_output_context2(&raw, nullptr, "mp4", temp_.path().c_str()), ErrorCode::internal,
                output_, "cannot set up the MP4 muxer");
  muxer_.reset(raw);
}

void VideoWriter::Impl::add_video_stream() {
  const char* name = options_.lossless ? "libx264rgb" : "libx264";
  const AVCodec* codec = avcodec_find_encoder_by_name(name);
  if (!codec) throw Error(ErrorCode::internal, std::string("this FFmpeg build has no ") + name + " encoder");
  encoder_.reset(avcodec_alloc_context3(codec));
  if (!encoder_) throw Error(ErrorCode::resource, "out of memory allocating the video encoder");
  // 4:2:0 (what every player decodes) cannot hold an odd width or height, and H.264 crops 4:2:0 in
  // 2-pixel steps: an odd size loses its last column or row. Lossless output (RGB) keeps every pixel.
  encoder_->width = options_.lossless ? options_.width : options_.width - (even(options_.width) ? 0 : 1);
  encoder_->height = options_.lossless ? options_.height : options_.height - (even(options_.height) ? 0 : 1);
  encoder_->pix_fmt = options_.lossless ? AV_PIX_FMT_BGR24 : AV_PIX_FMT_YUV420P;
  encoder_->time_base = {options_.fps.den, options_.fps.num};
  encoder_->framerate = {options_.fps.num, options_.fps.den};
  encoder_->thread_count = options_.threads;
  if (!options_.lossless) {
    // what swscale's default BGR -> YUV conversion produces, so players invert it correctly
    encoder_->colorspace = AVCOL_SPC_SMPTE170M;
    encoder_->color_range = AVCOL_RANGE_MPEG;
  }
  if (muxer_->oformat->flags & AVFMT_GLOBALHEADER) encoder_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;

  ffmpeg::Options settings;
  settings.set("preset", options_.preset.c_str());
  if (options_.lossless)
    settings.set("qp", "0");
  else
    settings.set("crf", std::to_string(options_.crf).c_str());
  const int opened = avcodec_open2(encoder_.get(), codec, settings.get());
  if (opened < 0)
    ffmpeg::fail(ErrorCode::invalid_argument, output_,
                 std::string("cannot open ") + name + " with preset \"" + options_.preset + "\"", opened);

  stream_ = avformat_new_stream(muxer_.get(), nullptr);
  if (!stream_) throw Error(ErrorCode::resource, "out of memory adding the video stream");
  ffmpeg::check(avcodec_parameters_from_context(stream_->codecpar, encoder_.get()), ErrorCode::internal, output_,
                "cannot describe the video stream");
  stream_->time_base = encoder_->time_base;
  stream_->avg_frame_rate = encoder_->framerate;

  picture_->format = encoder_->pix_fmt;
  picture_->width = encoder_->width;
  picture_->height = encoder_->height;
  ffmpeg::check(av_frame_get_buffer(picture_.get(), 0), ErrorCode::resource, output_, "cannot allocate a picture");
}

void VideoWriter::Impl::write_header() {
  ffmpeg::check(avio_open(&muxer_->pb, temp_.path().c_str(), AVIO_FLAG_WRITE), ErrorCode::resource, output_,
                "cannot open " + temp_.path().string() + " for writing");
  ffmpeg::Options settings;
  settings.set("movflags", "+faststart");  // index first: playback can start before the download ends
  ffmpeg::check(avformat_write_header(muxer_.get(), settings.get()), ErrorCode::resource, output_,
                "cannot write the MP4 header");
}

void VideoWriter::Impl::check_frame(const Frame& frame) const {
  if (frame.width != options_.width || frame.height != options_.height)
    throw Error(ErrorCode::invalid_argument, output_.string() + ": frame " + std::to_string(frames_submitted_) + " is " +
                                                 std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                                                 ", the output is " + std::to_string(options_.width) + "x" +
                                                 std::to_string(options_.height));
  if (frame.stride < 3 * frame.width ||
      frame.data.size() < static_cast<size_t>(frame.stride) * static_cast<size_t>(frame.height - 1) + 3u * frame.width)
    throw Error(ErrorCode::invalid_argument, output_.string() + ": frame " + std::to_string(frames_submitted_) +
                                                 " has too little pixel data for its size");
}

// The calling thread's path: lossless copies, or one-thread conversion into the reused picture.
void VideoWriter::Impl::fill_picture(const Frame& frame) {
  ffmpeg::check(av_frame_make_writable(picture_.get()), ErrorCode::resource, output_, "cannot reuse the picture");
  if (options_.lossless) {
    for (int y = 0; y < frame.height; ++y)
      std::memcpy(picture_->data[0] + static_cast<size_t>(y) * picture_->linesize[0], frame.row(y),
                  static_cast<size_t>(frame.width) * 3);
    return;
  }
  converter_.convert(borrow_bgr24(frame, picture_->width, picture_->height).get(), picture_.get());
}

void VideoWriter::Impl::encode_picture(AVFrame* picture) {
  picture->pts = frames_written_++;
  encode(picture);
  if (audio_) audio_->encode_until(audio_seconds(seconds_written()));
}

void VideoWriter::Impl::encode(const AVFrame* picture) {
  ffmpeg::check(avcodec_send_frame(encoder_.get(), picture), ErrorCode::internal, output_, "video encoding failed");
  for (;;) {
    const int received = avcodec_receive_packet(encoder_.get(), packet_.get());
    if (received == AVERROR(EAGAIN) || received == AVERROR_EOF) return;
    ffmpeg::check(received, ErrorCode::internal, output_, "video encoding failed");
    av_packet_rescale_ts(packet_.get(), encoder_->time_base, stream_->time_base);
    packet_->stream_index = stream_->index;
    ffmpeg::check(av_interleaved_write_frame(muxer_.get(), packet_.get()), ErrorCode::resource, output_,
                  "cannot write the video");
  }
}

void VideoWriter::Impl::write(Frame frame) {
  if (finished_) throw Error(ErrorCode::internal, output_.string() + ": write() after finish()");
  check_frame(frame);
  ++frames_submitted_;
  if (!pool_) {
    fill_picture(frame);
    encode_picture(picture_.get());
    return;
  }
  // two frames per thread in flight: the workers never wait for x264, and memory stays bounded
  if (pool_->pending() >= 2 * static_cast<size_t>(pool_->threads())) encode_picture(pool_->take_oldest().get());
  pool_->submit(std::move(frame));
}

void VideoWriter::Impl::write(const Yuv420Picture& yuv) {
  if (finished_) throw Error(ErrorCode::internal, output_.string() + ": write() after finish()");
  if (options_.lossless)
    throw Error(ErrorCode::invalid_argument, output_.string() + ": a lossless output takes BGR24 frames, not YUV pictures");
  const int width = encoder_->width, height = encoder_->height;
  const size_t luma = static_cast<size_t>(width) * height, chroma = luma / 4;
  if (yuv.width != width || yuv.height != height || yuv.size != luma + 2 * chroma || !yuv.planes)
    throw Error(ErrorCode::invalid_argument, output_.string() + ": picture " + std::to_string(frames_submitted_) + " is " +
                                                 std::to_string(yuv.width) + "x" + std::to_string(yuv.height) + " with " +
                                                 std::to_string(yuv.size) + " bytes, the encoder takes " +
                                                 std::to_string(width) + "x" + std::to_string(height) + " 4:2:0");
  ++frames_submitted_;
  if (pool_)  // the frames written before it go first
    while (pool_->pending() > 0) encode_picture(pool_->take_oldest().get());
  ffmpeg::check(av_frame_make_writable(picture_.get()), ErrorCode::resource, output_, "cannot reuse the picture");
  const uint8_t* plane = yuv.planes;
  for (int p = 0; p < 3; ++p) {
    const int plane_width = p == 0 ? width : width / 2, plane_height = p == 0 ? height : height / 2;
    for (int y = 0; y < plane_height; ++y)
      std::memcpy(picture_->data[p] + static_cast<size_t>(y) * picture_->linesize[p],
                  plane + static_cast<size_t>(y) * plane_width, static_cast<size_t>(plane_width));
    plane += static_cast<size_t>(plane_width) * plane_height;
  }
  encode_picture(picture_.get());
}

void VideoWriter::Impl::finish() {
  if (finished_) return;
  if (frames_submitted_ == 0) throw Error(ErrorCode::invalid_argument, output_.string() + ": no frames were written");
  if (pool_)
    while (pool_->pending() > 0) encode_picture(pool_->take_oldest().get());
  encode(nullptr);
  if (audio_)
    audio_->finish(options_.max_audio_seconds > 0 ? options_.max_audio_seconds : seconds_written());
  ffmpeg::check(av_write_trailer(muxer_.get()), ErrorCode::resource, output_, "cannot finish the MP4 file");
  ffmpeg::check(avio_closep(&muxer_->pb), ErrorCode::resource, output_, "cannot close " + temp_.path().string());
  temp_.rename_to(output_);
  finished_ = true;
}

VideoWriter::VideoWriter(const std::filesystem::path& output, const VideoWriterOptions& options)
    : impl_(std::make_unique<Impl>(output, options)) {}
VideoWriter::~VideoWriter() = default;
void VideoWriter::write(Frame frame) { impl_->write(std::move(frame)); }
void VideoWriter::write(const Yuv420Picture& picture) { impl_->write(picture); }
int VideoWriter::encoded_width() const { return impl_->encoded_width(); }
int VideoWriter::encoded_height() const { return impl_->encoded_height(); }
void VideoWriter::finish() { impl_->finish(); }

}  // namespace heygem::media
