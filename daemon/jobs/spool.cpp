#include "daemon/jobs/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "common/errors.hpp"
#include "daemon/jobs/job.hpp"
#include "common/unique_fd.hpp"
#include "daemon/jobs/store.hpp"

namespace heygem::jobs {
namespace {

constexpr std::size_t kCopyChunk = 1 << 20;

std::string errno_text() { return std::strerror(errno); }

ssize_t read_some(int fd, char* buffer, std::size_t size) {
  for (;;) {
    const ssize_t n = ::read(fd, buffer, size);
    if (n >= 0 || errno != EINTR) return n;
  }
}

void write_all_at(int fd, const char* data, std::size_t size, off_t offset, const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::pwrite(fd, data, size, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCode::resource, "cannot write " + what + ": " + errno_text());
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += n;
  }
}

// A pipe or socket: no offset, no truncation; written in order.
void write_all_in_order(int fd, const char* data, std::size_t size, const std::string& what) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCode::resource, "cannot write " + what + ": " + errno_text());
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

bool is_stream(int fd) {
  struct stat info {};
  return ::fstat(fd, &info) == 0 && (S_ISFIFO(info.st_mode) || S_ISSOCK(info.st_mode));
}

}  // namespace

Spool::Spool(const std::filesystem::path& state_dir) : root_(state_dir / "spool") { create_private_directories(root_); }

std::filesystem::path Spool::job_dir(const std::string& id) const {
  if (!is_valid_job_id(id)) throw Error(ErrorCode::internal, "not a job id: " + id);
  return root_ / id;
}
std::filesystem::path Spool::audio_path(const std::string& id) const { return job_dir(id) / "audio"; }
std::filesystem::path Spool::video_path(const std::string& id, std::size_t item) const {
  return job_dir(id) / ("video-" + std::to_string(item));
}
std::filesystem::path Spool::output_path(const std::string& id, std::size_t item) const {
  return job_dir(id) / ("output-" + std::to_string(item) + ".mp4");
}
std::filesystem::path Spool::log_path(const std::string& id) const { return job_dir(id) / "job.log"; }
std::filesystem::path Spool::scratch_dir(const std::string& id) const { return job_dir(id) / "scratch"; }

void Spool::create_job_dir(const std::string& id) const {
  create_private_directories(job_dir(id));
  create_private_directories(scratch_dir(id));
}

std::uint64_t Spool::copy_in(int source_fd, const std::filesystem::path& target, std::uint64_t max_bytes,
                             const std::string& what, std::chrono::steady_clock::time_point deadline) const {
  // Messages go to the client: they name its input, never the spool's paths.
  const std::string copy_of = "the spool's copy of " + what;
  UniqueFd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) throw Error(ErrorCode::resource, "cannot create " + copy_of + ": " + errno_text());
  std::vector<char> buffer(kCopyChunk);
  std::uint64_t total = 0;
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(ErrorCode::resource, "copying " + what + " did not finish in time (limits.input_copy_timeout; " +
                                           std::to_string(total) + " bytes copied): is it on a stalled file system?");
    const ssize_t n = read_some(source_fd, buffer.data(), buffer.size());
    if (n < 0) throw Error(ErrorCode::invalid_input, "cannot read " + what + ": " + errno_text());
    if (n == 0) break;
    total += static_cast<std::uint64_t>(n);
    if (total > max_bytes)
      throw Error(ErrorCode::invalid_input, what + " is larger than limits.max_input_bytes (" +
                                                std::to_string(max_bytes) + " bytes)");
    write_all_at(out.get(), buffer.data(), static_cast<std::size_t>(n), static_cast<off_t>(total - n), copy_of);
  }
  if (total == 0) throw Error(ErrorCode::invalid_input, what + " is empty");
  if (::fsync(out.get()) != 0) throw Error(ErrorCode::resource, "cannot fsync " + copy_of + ": " + errno_text());
  return total;
}

void Spool::reset_outputs(const std::string& id, std::size_t items) const {
  std::set<std::filesystem::path> keep{audio_path(id), log_path(id)};
  for (std::size_t i = 0; i < items; ++i) keep.insert(video_path(id, i));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(job_dir(id), ec))
    if (!keep.count(entry.path())) std::filesystem::remove_all(entry.path(), ec);
  create_private_directories(scratch_dir(id));
}

void Spool::remove_job(const std::string& id) const {
  std::error_code ec;
  std::filesystem::remove_all(job_dir(id), ec);
  if (ec) throw Error(ErrorCode::resource, "cannot remove " + job_dir(id).string() + ": " + ec.message());
}

std::uint64_t Spool::job_bytes(const std::string& id) const {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(job_dir(id), ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) total += it->file_size(size_ec);
  }
  return total;
}

std::vector<std::string> Spool::job_ids() const {
  std::vector<std::string> ids;
  for (const auto& entry : std::filesystem::directory_iterator(root_)) {
    const auto name = entry.path().filename().string();
    if (is_valid_job_id(name)) ids.push_back(name);
  }
  return ids;
}

std::uint64_t deliver_file(const std::filesystem::path& source, int target_fd, const std::string& what) {
  const UniqueFd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) throw Error(ErrorCode::resource, "cannot open the result for " + what + ": " + errno_text());
  return copy_contents(in.get(), target_fd, what);
}

std::uint64_t copy_contents(int source_fd, int target_fd, const std::string& what) {
  const bool stream = is_stream(target_fd);
  if (!stream && ::ftruncate(target_fd, 0) != 0)
    throw Error(ErrorCode::resource, "cannot truncate " + what + ": " + errno_text());
  std::vector<char> buffer(kCopyChunk);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = ::pread(source_fd, buffer.data(), buffer.size(), static_cast<off_t>(total));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCode::resource, "cannot read the result for " + what + ": " + errno_text());
    if (n == 0) break;
    if (stream)
      write_all_in_order(target_fd, buffer.data(), static_cast<std::size_t>(n), what);
    else
      write_all_at(target_fd, buffer.data(), static_cast<std::size_t>(n), static_cast<off_t>(total), what);
    total += static_cast<std::uint64_t>(n);
  }
  if (!stream && ::fsync(target_fd) != 0 && errno != EINVAL && errno != EROFS)
    throw Error(ErrorCode::resource, "cannot fsync " + what + ": " + errno_text());
  return total;
}

}  // namespace heygem::jobs
