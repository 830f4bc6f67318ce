#pragma once
// The spool: <state-dir>/spool/<job>/ holds a job's inputs (copied from the client's fds at
// submit, so the job survives the client and a daemon restart), its finished outputs waiting for
// fetch, and its log. The daemon never opens a path a client names: everything here is ours.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heygem::jobs {

class Spool {
 public:
  explicit Spool(const std::filesystem::path& state_dir);  // creates <state_dir>/spool

  std::filesystem::path job_dir(const std::string& id) const;
  std::filesystem::path audio_path(const std::string& id) const;
  std::filesystem::path video_path(const std::string& id, std::size_t item) const;
  std::filesystem::path output_path(const std::string& id, std::size_t item) const;
  std::filesystem::path log_path(const std::string& id) const;
  std::filesystem::path scratch_dir(const std::string& id) const;

  void create_job_dir(const std::string& id) const;
  // Copies everything readable from `source_fd` (from its current offset; pipes work too) into
  // `target`, durably. Throws heygem::Error: invalid_input if it exceeds `max_bytes` or is empty,
  // resource on a write failure (disk full) or when the copy is still going at `deadline`; `what`
  // names the input in the message.
  std::uint64_t copy_in(int source_fd, const std::filesystem::path& target, std::uint64_t max_bytes,
                        const std::string& what,
                        std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max()) const;
  // Removes everything of a job but its inputs and log (outputs, half-written temp files, scratch):
  // a requeued job starts from a clean folder.
  void reset_outputs(const std::string& id, std::size_t items) const;
  void remove_job(const std::string& id) const;
  std::uint64_t job_bytes(const std::string& id) const;
  std::vector<std::string> job_ids() const;  // folders present (valid ids only)

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
};

// Replaces the content of `target_fd` (truncate, then write from offset 0) with the file at
// `source`; a pipe or socket gets the bytes in order. Throws heygem::Error(resource) naming `what` and the cause. Returns the bytes written.
std::uint64_t deliver_file(const std::filesystem::path& source, int target_fd, const std::string& what);
// The same from an open file (read from offset 0).
std::uint64_t copy_contents(int source_fd, int target_fd, const std::string& what);

}  // namespace heygem::jobs
