#pragma once
// The files heygemctl opens for the daemon: inputs read-only, outputs created by the user's own
// process (so the daemon writes only where the user may), never overwritten without --force.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.hpp"

namespace heygem::cli {

// Opens a regular file for reading. Throws CliError(local_file) naming the file and the cause.
UniqueFd open_input(const std::filesystem::path& path);

// An output file this process created (or truncated with --force). Unless kept, it is removed when
// this object goes: a job that did not finish leaves no partial file behind.
class OutputFile {
 public:
  // Throws CliError(local_file): "<path> exists (use --force to overwrite)", or the open error.
  static OutputFile create(const std::filesystem::path& path, bool force);

  OutputFile(OutputFile&& other) noexcept
      : fd_(std::move(other.fd_)), path_(std::exchange(other.path_, {})), keep_(other.keep_) {}
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }
  // Closes our copy of the fd (the daemon holds its own) without deciding about the file.
  void close_fd() { fd_.reset(); }

 private:
  OutputFile(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::filesystem::path path_;
  bool keep_ = false;
};

// The output name heygemctl gives a video: "<stem>.lipsync.mp4".
std::string output_name_for(const std::filesystem::path& video);

// Where each video's output goes. `target` is -o ("" = none): with one video a file or an existing
// folder (or a path ending in '/'); with several, a folder. No -o: the current folder. Relative
// paths are taken from `cwd`. Throws
// CliError(usage) when -o is a file but there are several videos, or two outputs would collide.
std::vector<std::filesystem::path> plan_outputs(const std::vector<std::filesystem::path>& videos,
                                                const std::string& target, const std::filesystem::path& cwd);

}  // namespace heygem::cli
