#pragma once
// Converts whole BGR24 frames into encoder pictures on several threads, one swscale context per
// thread, and hands the pictures back in the order the frames came in. Whole frames per thread keep
// every picture byte-identical to a one-thread conversion, which swscale's own slice threads did not
// on the scaled BGR -> YUV path (video_writer.cpp). On an H200 the encoder's one-thread conversion
// was the pipeline's bound (docs/gpu.md). Internal to heygem_media.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/media_types.hpp"

namespace heygem::media {

struct PictureFormat {
  int width = 0;
  int height = 0;
  AVPixelFormat pixel_format = AV_PIX_FMT_NONE;
};

class FrameConversionPool {
 public:
  // `threads` >= 1 workers converting with the SWS_* `flags`; `file` names errors.
  FrameConversionPool(int threads, int flags, PictureFormat format, std::filesystem::path file);
  ~FrameConversionPool();  // drops conversions not yet taken, joins the workers
  FrameConversionPool(const FrameConversionPool&) = delete;
  FrameConversionPool& operator=(const FrameConversionPool&) = delete;

  void submit(Frame frame);  // queues one frame (of the pool's size) for conversion
  // The picture of the oldest frame not yet taken, waiting for it; rethrows its conversion error.
  ffmpeg::FramePtr take_oldest();
  size_t pending() const { return results_.size(); }
  int threads() const { return static_cast<int>(workers_.size()); }

 private:
  struct Task {
    Frame frame;
    std::promise<ffmpeg::FramePtr> picture;
  };
  void work();

  int flags_;
  PictureFormat format_;
  std::filesystem::path file_;
  std::mutex mutex_;
  std::condition_variable task_ready_;
  std::deque<Task> tasks_;
  bool stopping_ = false;
  std::deque<std::future<ffmpeg::FramePtr>> results_;  // submission order; used by the caller only
  std::vector<std::thread> workers_;                    // last: started once everything above exists
};

}  // namespace heygem::media
