#include "daemon/media/frame_conversion_pool.hpp"

#include <exception>
#include <utility>

#include "common/errors.hpp"
#include "daemon/media/ffmpeg_error.hpp"
#include "daemon/media/pixel_converter.hpp"

namespace heygem::media {

FrameConversionPool::FrameConversionPool(int threads, int flags, PictureFormat format, std::filesystem::path file)
    : flags_(flags), format_(format), file_(std::move(file)) {
  if (threads < 1) throw Error(ErrorCode::internal, "a conversion pool needs at least one thread");
  workers_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

FrameConversionPool::~FrameConversionPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  task_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void FrameConversionPool::submit(Frame frame) {
  Task task{std::move(frame), {}};
  results_.push_back(task.picture.get_future());
  {
    std::lock_guard lock(mutex_);
    tasks_.push_back(std::move(task));
  }
  task_ready_.notify_one();
}

ffmpeg::FramePtr FrameConversionPool::take_oldest() {
  if (results_.empty()) return nullptr;
  auto result = std::move(results_.front());
  results_.pop_front();
  return result.get();
}

void FrameConversionPool::work() {
  PixelConverter converter{flags_, 1, file_};  // one context per thread: swscale contexts are not shared
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      task_ready_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (stopping_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      ffmpeg::FramePtr picture = ffmpeg::make_frame();
      picture->format = format_.pixel_format;
      picture->width = format_.width;
      picture->height = format_.height;
      ffmpeg::check(av_frame_get_buffer(picture.get(), 0), ErrorCode::resource, file_, "cannot allocate a picture");
      converter.convert(borrow_bgr24(task.frame, format_.width, format_.height).get(), picture.get());
      task.picture.set_value(std::move(picture));
    } catch (...) {
      task.picture.set_exception(std::current_exception());
    }
  }
}

}  // namespace heygem::media
