#include "daemon/models/checkpoint_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/errors.hpp"

namespace heygem::models::checkpoint_io {

void fail(std::string_view name, std::string_view cause) {
  std::string message(name);
  message += ": ";
  message += cause;
  throw Error(ErrorCode::invalid_input, message);
}

bool ByteSource::contains(std::uint64_t offset, std::uint64_t length) const {
  return offset <= size_ && length <= size_ - offset;
}

void ByteSource::read(std::uint64_t offset, std::span<std::uint8_t> out, std::string_view what) const {
  if (!contains(offset, out.size())) {
    fail(name_, "truncated: " + std::string(what) + " needs bytes [" + std::to_string(offset) + ", " +
                    std::to_string(offset + out.size()) + ") but the input has " +
                    std::to_string(size_) + " bytes");
  }
  if (!out.empty()) read_unchecked(offset, out);
}

std::vector<std::uint8_t> ByteSource::read_vector(std::uint64_t offset, std::uint64_t length,
                                                  std::string_view what) const {
  // Check before allocating: a lying length must not become a huge allocation.
  if (!contains(offset, length)) {
    fail(name_, "truncated: " + std::string(what) + " needs " + std::to_string(length) +
                    " bytes at offset " + std::to_string(offset) + " but the input has " +
                    std::to_string(size_) + " bytes");
  }
  std::vector<std::uint8_t> bytes(length);
  read(offset, bytes, what);
  return bytes;
}

namespace {

int open_read_only(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(file.string(), std::string("cannot open: ") + std::strerror(errno));
  return fd;
}

std::uint64_t regular_file_size(const std::filesystem::path& file, int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    fail(file.string(), std::string("cannot stat: ") + std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    fail(file.string(), "not a regular file");
  }
  return static_cast<std::uint64_t>(info.st_size);
}

}  // namespace

FileSource::FileSource(const std::filesystem::path& file) : FileSource(file, open_read_only(file)) {}

FileSource::FileSource(const std::filesystem::path& file, int fd)
    : ByteSource(file.string(), regular_file_size(file, fd)), fd_(fd) {}

FileSource::~FileSource() { ::close(fd_); }

void FileSource::read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = ::pread(fd_, out.data() + done, out.size() - done,
                                static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(name(), std::string("read error: ") + std::strerror(errno));
    if (got == 0) fail(name(), "truncated: the file shrank while it was being read");
    done += static_cast<std::size_t>(got);
  }
}

void MemorySource::read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const {
  std::memcpy(out.data(), bytes_.data() + offset, out.size());
}

SliceSource::SliceSource(const ByteSource& parent, std::uint64_t offset, std::uint64_t size,
                         std::string_view label)
    : ByteSource(parent.name() + ": " + std::string(label), size), parent_(parent), offset_(offset) {
  if (!parent.contains(offset, size)) {
    fail(parent.name(), "truncated: " + std::string(label) + " lies outside the input");
  }
}

void SliceSource::read_unchecked(std::uint64_t offset, std::span<std::uint8_t> out) const {
  parent_.read(offset_ + offset, out, name());
}

std::span<const std::uint8_t> ByteCursor::take(std::uint64_t length, std::string_view what) {
  if (!source_.contains(position_, length)) {
    fail(source_.name(), "truncated: " + std::string(what) + " at offset " +
                             std::to_string(position_) + " needs " + std::to_string(length) +
                             " bytes but the input has " + std::to_string(source_.size()));
  }
  const std::uint64_t buffered_end = buffer_start_ + buffer_.size();
  if (position_ < buffer_start_ || position_ + length > buffered_end) {
    const std::uint64_t want = std::max(length, kChunk);
    const std::uint64_t available = source_.size() - position_;
    buffer_.resize(std::min(want, available));
    buffer_start_ = position_;
    source_.read(buffer_start_, buffer_, what);
  }
  const auto start = static_cast<std::size_t>(position_ - buffer_start_);
  position_ += length;
  return std::span<const std::uint8_t>(buffer_).subspan(start, static_cast<std::size_t>(length));
}

std::uint64_t load_le(std::span<const std::uint8_t> bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) value = (value << 8) | bytes[i];
  return value;
}

}  // namespace heygem::models::checkpoint_io
