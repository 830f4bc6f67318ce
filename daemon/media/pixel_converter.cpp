#include "daemon/media/pixel_converter.hpp"

#include <algorithm>
#include <string>
#include <thread>

extern "C" {
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
}

#include "daemon/media/ffmpeg_error.hpp"

namespace heygem::media {
namespace {

std::string format_name(int format) {
  const char* name = av_get_pix_fmt_name(static_cast<AVPixelFormat>(format));
  return name ? name : "(unknown)";
}

}  // namespace

int automatic_conversion_threads() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(cores / 2, 1, 8);
}

ffmpeg::FramePtr borrow_bgr24(const Frame& frame, int width, int height) {
  ffmpeg::FramePtr source = ffmpeg::make_frame();
  source->format = AV_PIX_FMT_BGR24;
  source->width = width > 0 ? std::min(width, frame.width) : frame.width;
  source->height = height > 0 ? std::min(height, frame.height) : frame.height;
  source->data[0] = const_cast<uint8_t*>(frame.data.data());
  source->linesize[0] = frame.stride;
  source->buf[0] = av_buffer_create(source->data[0], frame.data.size(), [](void*, uint8_t*) {}, nullptr,
                                    AV_BUFFER_FLAG_READONLY);
  if (!source->buf[0]) throw Error(ErrorCode::resource, "out of memory wrapping a frame for conversion");
  return source;
}

PixelConverter::PixelConverter(int flags, int threads, std::filesystem::path file)
    : flags_(flags), threads_(threads > 0 ? threads : automatic_conversion_threads()), file_(std::move(file)) {}

void PixelConverter::configure(const AVFrame* source, const AVFrame* destination) {
  if (context_ && source->width == width_ && source->height == height_ && source->format == source_format_ &&
      destination->format == destination_format_)
    return;
  context_.reset(sws_alloc_context());
  if (!context_) throw Error(ErrorCode::resource, "out of memory setting up the pixel conversion of " + file_.string());
  SwsContext* context = context_.get();
  const bool options_set = av_opt_set_int(context, "srcw", source->width, 0) >= 0 &&
                           av_opt_set_int(context, "srch", source->height, 0) >= 0 &&
                           av_opt_set_int(context, "src_format", source->format, 0) >= 0 &&
                           av_opt_set_int(context, "dstw", destination->width, 0) >= 0 &&
                           av_opt_set_int(context, "dsth", destination->height, 0) >= 0 &&
                           av_opt_set_int(context, "dst_format", destination->format, 0) >= 0 &&
                           av_opt_set_int(context, "sws_flags", flags_, 0) >= 0 &&
                           av_opt_set_int(context, "threads", threads_, 0) >= 0;
  if (!options_set || sws_init_context(context, nullptr, nullptr) < 0) {
    context_.reset();
    ffmpeg::fail(ErrorCode::invalid_input, file_,
                 "cannot convert the pixel format " + format_name(source->format) + " to " +
                     format_name(destination->format));
  }
  width_ = source->width;
  height_ = source->height;
  source_format_ = source->format;
  destination_format_ = destination->format;
}

void PixelConverter::convert(const AVFrame* source, AVFrame* destination) {
  configure(source, destination);
  const int result = sws_scale_frame(context_.get(), destination, source);
  if (result < 0) ffmpeg::fail(ErrorCode::invalid_input, file_, "pixel conversion failed", result);
}

}  // namespace heygem::media
