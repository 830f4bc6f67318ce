#include "daemon/pipeline/frame_source.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.hpp"

namespace heygem::pipeline {
namespace {

// Looping is likely when the decoder's frame estimate does not clearly cover the output.
bool loop_expected(const media::VideoInfo& info, int64_t output_frames) {
  return info.still_image || info.frame_count_estimate <= 0 || info.frame_count_estimate < output_frames + 2;
}

void write_all(int fd, const uint8_t* data, size_t size, off_t offset) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      throw Error(ErrorCode::resource, std::string("cannot write the loop spill file: ") + std::strerror(errno));
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

}  // namespace

FrameSource::FrameSource(const std::filesystem::path& video, const media::VideoReaderOptions& reader_options,
                         int64_t output_frames, LoopMode loop, const std::filesystem::path& scratch_dir)
    : video_(video),
      reader_options_(reader_options),
      reader_(std::make_unique<media::VideoReader>(video, reader_options)),
      output_frames_(output_frames),
      loop_(loop),
      scratch_dir_(scratch_dir) {
  info_ = reader_->info();
  fps_ = reader_->output_fps();
  width_ = info_.width;
  height_ = info_.height;
  spilling_ = loop_expected(info_, output_frames_);
  if (spilling_) {
    open_spill();
    if (reader_options_.device_pictures) {
      reader_options_.device_pictures = false;
      reader_ = std::make_unique<media::VideoReader>(video, reader_options_);
    }
  }
}

FrameSource::~FrameSource() {
  if (spill_fd_ >= 0) ::close(spill_fd_);
}

const media::VideoInfo& FrameSource::info() const { return info_; }
media::Rational FrameSource::fps() const { return fps_; }

void FrameSource::open_spill() {
  // O_TMPFILE: the file has no name, so it vanishes with the fd whatever happens to the process
  spill_fd_ = ::open(scratch_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (spill_fd_ < 0) {
    std::string pattern = (scratch_dir_ / "heygem-spill-XXXXXX").string();
    spill_fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (spill_fd_ >= 0) ::unlink(pattern.c_str());
  }
  if (spill_fd_ < 0)
    throw Error(ErrorCode::resource,
                "cannot create a spill file in " + scratch_dir_.string() + ": " + std::strerror(errno));
}

void FrameSource::spill(const media::Frame& frame) {
  const size_t bytes = static_cast<size_t>(width_) * height_ * 3;
  for (int y = 0; y < height_; ++y)
    write_all(spill_fd_, frame.row(y), static_cast<size_t>(width_) * 3,
              static_cast<off_t>(frame.index * static_cast<int64_t>(bytes) + int64_t{y} * width_ * 3));
}

void FrameSource::read_spilled(int64_t source_index, media::Frame& frame) {
  frame.resize(width_, height_);
  const size_t bytes = frame.data.size();
  size_t done = 0;
  const off_t base = static_cast<off_t>(source_index * static_cast<int64_t>(bytes));
  while (done < bytes) {
    ssize_t n = ::pread(spill_fd_, frame.data.data() + done, bytes - done, base + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorCode::resource, "cannot read back the loop spill file");
    done += static_cast<size_t>(n);
  }
  frame.index = source_index;
}

// The estimate said no loop, yet the video ran out: decode it again, this time into the spill.
void FrameSource::rebuild_spill() {
  open_spill();
  reader_options_.device_pictures = false;
  media::VideoReader again(video_, reader_options_);
  media::Frame frame;
  int64_t count = 0;
  while (count < source_frames_ && again.next(frame)) {
    frame.index = count++;
    spill(frame);
  }
  if (count != source_frames_)
    throw Error(ErrorCode::invalid_input, video_.string() + ": decoding is not repeatable (" +
                                              std::to_string(count) + " frames on the second pass, " +
                                              std::to_string(source_frames_) + " on the first)");
  spilling_ = true;
}

bool FrameSource::next_from_decoder(SourceFrame& out) {
  if (!reader_->next(out.frame)) {
    decoder_done_ = true;
    source_frames_ = produced_;
    if (source_frames_ == 0) throw Error(ErrorCode::invalid_input, video_.string() + ": the video has no frames");
    return false;
  }
  if (out.frame.width != width_ || out.frame.height != height_)
    throw Error(ErrorCode::invalid_input, video_.string() + ": frame size changes mid-stream (" +
                                              std::to_string(out.frame.width) + "x" + std::to_string(out.frame.height) +
                                              " after " + std::to_string(width_) + "x" + std::to_string(height_) + ")");
  out.frame.index = produced_;
  if (spilling_) spill(out.frame);
  out.output_index = produced_;
  out.source_index = produced_;
  out.first_pass = true;
  return true;
}

bool FrameSource::next(SourceFrame& out) {
  if (produced_ >= output_frames_) return false;
  if (!decoder_done_) {
    if (next_from_decoder(out)) {
      ++produced_;
      if (produced_ == output_frames_) reader_.reset();  // the video is cut here; free the decoder early
      return true;
    }
    reader_.reset();
    if (!spilling_) rebuild_spill();
  }
  out.output_index = produced_;
  out.source_index = source_frame_index(produced_, source_frames_, loop_);
  out.first_pass = false;
  read_spilled(out.source_index, out.frame);
  ++produced_;
  return true;
}

}  // namespace heygem::pipeline
