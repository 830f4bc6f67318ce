#pragma once
// The shared storage a cluster job may touch: inputs are opened and outputs created only beneath
// the configured roots (cluster.media_roots). Paths resolve with openat2(RESOLVE_BENEATH), so a
// symlink or ".." that leaves its root is refused by the kernel, not by string checks alone.
// Outputs are written under a temporary name in the target's folder and renamed into place once
// complete: a reader sees the whole file or none.
#include <filesystem>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"

namespace heygem::cluster {

// A file being written beside its final name; removed on destruction unless published.
class PendingOutput {
 public:
  PendingOutput(UniqueFd folder, std::string final_name, std::string temp_name, UniqueFd file, std::string shown)
      : folder_(std::move(folder)), final_name_(std::move(final_name)), temp_name_(std::move(temp_name)),
        file_(std::move(file)), shown_(std::move(shown)) {}
  ~PendingOutput();
  PendingOutput(PendingOutput&&) noexcept = default;
  PendingOutput& operator=(PendingOutput&&) = delete;
  PendingOutput(const PendingOutput&) = delete;

  // The writable fd (handed to the scheduler, which closes its copy when the job ends).
  UniqueFd take_file() { return std::move(file_); }
  // fsync of the finished temporary file, ahead of publish() (which then skips it): called as soon
  // as the file is complete, it takes the data's flush off the end of the job. False on failure
  // (publish() tries again and reports it).
  bool sync() noexcept;
  // fsync (unless synced) + rename onto the final name + fsync of the folder. Throws heygem::Error(resource).
  void publish();
  const std::string& shown() const { return shown_; }  // the final path, for messages

 private:
  UniqueFd folder_;
  std::string final_name_, temp_name_;
  UniqueFd file_;
  std::string shown_;
  bool done_ = false;
  bool synced_ = false;
};

class MediaRoots {
 public:
  // Throws Error(invalid_argument) when a root is not an absolute, existing folder.
  explicit MediaRoots(const std::vector<std::filesystem::path>& roots);

  // Opens `path` (absolute) for reading beneath its root. Throws Error(invalid_argument) with the
  // reason: outside every root, leaves its root through a symlink, missing, not a regular file.
  UniqueFd open_input(const std::string& path) const;
  // Creates a temporary file in `path`'s folder (which must exist beneath a root), named after
  // `tag` so that two runs never share one, and removes the temporary files of earlier runs whose
  // tag starts with `stale_prefix` (the job's id). Throws Error(invalid_argument) as open_input.
  PendingOutput create_output(const std::string& path, const std::string& tag, const std::string& stale_prefix) const;

 private:
  struct Root {
    std::filesystem::path path;
    UniqueFd fd;  // O_PATH of the folder
  };
  // The root holding `path` and the path relative to it; throws naming the roots.
  std::pair<const Root*, std::string> locate(const std::string& path, const char* what) const;

  std::vector<Root> roots_;
};

}  // namespace heygem::cluster
