#include "daemon/jobs/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"

namespace heygem::jobs {
namespace {

[[noreturn]] void fail_errno(const std::string& what, const std::filesystem::path& path) {
  throw Error(ErrorCode::resource, what + " " + path.string() + ": " + std::strerror(errno));
}

class FileHandle {
 public:
  FileHandle(const std::filesystem::path& path, int flags, mode_t mode = 0600)
      : fd_(::open(path.c_str(), flags | O_CLOEXEC, mode)) {
    if (fd_ < 0) fail_errno("cannot open", path);
  }
  ~FileHandle() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (a failed close can mean lost data).
  void close_checked(const std::filesystem::path& path) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("cannot close", path);
  }

 private:
  int fd_;
};

void write_all(int fd, const std::string& content, const std::filesystem::path& path) {
  std::size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno("cannot write", path);
    written += static_cast<std::size_t>(n);
  }
}

bool entry_is_regular(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec));
}

}  // namespace

void create_private_directories(const std::filesystem::path& directory) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) throw Error(ErrorCode::resource, "cannot create " + directory.string() + ": " + ec.message());
  // Spooled media and records belong to their submitters: only the daemon reads them.
  std::filesystem::permissions(directory, std::filesystem::perms::owner_all, ec);
  if (ec) throw Error(ErrorCode::resource, "cannot set the mode of " + directory.string() + ": " + ec.message());
}

void sync_directory(const std::filesystem::path& directory) {
  FileHandle dir(directory, O_RDONLY | O_DIRECTORY);
  if (::fsync(dir.get()) != 0) fail_errno("cannot fsync", directory);
}

void write_file_durably(const std::filesystem::path& target, const std::string& content) {
  auto temp = target;
  temp += ".tmp";
  {
    FileHandle file(temp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write_all(file.get(), content, temp);
    if (::fsync(file.get()) != 0) fail_errno("cannot fsync", temp);
    file.close_checked(temp);
  }
  if (::rename(temp.c_str(), target.c_str()) != 0) fail_errno("cannot rename to", target);
  sync_directory(target.parent_path());
}

JobStore::JobStore(const std::filesystem::path& state_dir)
    : jobs_dir_(state_dir / "jobs"), quarantine_dir_(state_dir / "quarantine") {
  create_private_directories(jobs_dir_);
  create_private_directories(quarantine_dir_);
}

std::filesystem::path JobStore::record_path(const std::string& id) const {
  if (!is_valid_job_id(id)) throw Error(ErrorCode::internal, "not a job id: " + id);
  return jobs_dir_ / (id + ".json");
}

QuarantinedRecord JobStore::quarantine(const std::filesystem::path& record, const std::string& cause) {
  // Never overwrite an earlier quarantined copy: add a time stamp and a counter.
  const auto stamp = std::to_string(now_unix_ms());
  auto target = quarantine_dir_ / (record.filename().string() + "." + stamp);
  for (int n = 1; std::filesystem::exists(target); ++n)
    target = quarantine_dir_ / (record.filename().string() + "." + stamp + "." + std::to_string(n));
  if (::rename(record.c_str(), target.c_str()) != 0) fail_errno("cannot quarantine", record);
  sync_directory(jobs_dir_);
  sync_directory(quarantine_dir_);
  spdlog::error("job store: corrupt record {} moved to {}: {}", record.string(), target.string(), cause);
  return {target, cause};
}

LoadedJobs JobStore::load_all() {
  LoadedJobs loaded;
  std::vector<std::filesystem::path> records;
  for (const auto& entry : std::filesystem::directory_iterator(jobs_dir_)) {
    const auto& path = entry.path();
    if (path.extension() == ".tmp" && entry_is_regular(path)) {
      // A write that never reached its rename: the record it was replacing is still intact.
      std::error_code ec;
      std::filesystem::remove(path, ec);
      if (ec) spdlog::warn("job store: cannot remove {}: {}", path.string(), ec.message());
      continue;
    }
    records.push_back(path);
  }
  for (const auto& path : records) {
    try {
      if (path.extension() != ".json" || !entry_is_regular(path))
        throw Error(ErrorCode::invalid_input, "not a job record file");
      std::ifstream in(path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(text.str());
      } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::invalid_input, std::string("not valid JSON: ") + e.what());
      }
      auto job = job_from_json(record);
      if (path.filename() != job.id + ".json")
        throw Error(ErrorCode::invalid_input, "file name does not match its id " + job.id);
      loaded.jobs.push_back(std::move(job));
    } catch (const Error& e) {
      loaded.quarantined.push_back(quarantine(path, e.what()));
    }
  }
  std::sort(loaded.jobs.begin(), loaded.jobs.end(),
            [](const Job& a, const Job& b) { return a.sequence < b.sequence; });
  return loaded;
}

void JobStore::save(const Job& job) { write_file_durably(record_path(job.id), to_json(job).dump(1) + "\n"); }

void JobStore::remove(const std::string& id) {
  const auto path = record_path(id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail_errno("cannot remove", path);
  sync_directory(jobs_dir_);
}

}  // namespace heygem::jobs
