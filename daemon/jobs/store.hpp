#pragma once
// The durable job store: one JSON record per job in <state-dir>/jobs/<id>.json, each written
// temp -> fsync -> rename -> fsync(dir), so a crash leaves either the old or the new record.
// A record that cannot be read is moved to <state-dir>/quarantine/ with a logged error: never
// dropped silently, never overwritten.
#include <filesystem>
#include <string>
#include <vector>

#include "daemon/jobs/job.hpp"

namespace heygem::jobs {

struct QuarantinedRecord {
  std::filesystem::path moved_to;
  std::string cause;
};

struct LoadedJobs {
  std::vector<Job> jobs;  // in submission order (sequence)
  std::vector<QuarantinedRecord> quarantined;
};

class JobStore {
 public:
  // Creates <state_dir>/jobs and <state_dir>/quarantine if missing.
  explicit JobStore(const std::filesystem::path& state_dir);

  LoadedJobs load_all();
  void save(const Job& job);
  void remove(const std::string& id);
  const std::filesystem::path& directory() const { return jobs_dir_; }

 private:
  std::filesystem::path record_path(const std::string& id) const;
  QuarantinedRecord quarantine(const std::filesystem::path& record, const std::string& cause);

  std::filesystem::path jobs_dir_;
  std::filesystem::path quarantine_dir_;
};

// Writes `content` to `target` atomically and durably (temp file in the same folder, fsync,
// rename, fsync of the folder). Throws heygem::Error(resource) naming the file and errno text.
void write_file_durably(const std::filesystem::path& target, const std::string& content);
// fsync of a folder, so a rename or unlink inside it is durable.
void sync_directory(const std::filesystem::path& directory);
// mkdir -p, the last folder with mode 0700; throws heygem::Error(resource) naming it.
void create_private_directories(const std::filesystem::path& directory);

}  // namespace heygem::jobs
