#pragma once
// The real heygemd and heygemctl as processes, for the hardening suites: a private socket and state
// dir, the untrained hash-init generator (no weights needed) and the shared RetinaFace weights.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/protocol.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::test {

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out, err;
};

// Runs `argv` (no shell) with stdout/stderr captured, optionally as another uid/gid.
CommandResult run_command(const std::vector<std::string>& argv, std::optional<uid_t> uid = std::nullopt,
                          std::optional<gid_t> gid = std::nullopt);

struct DaemonOptions {
  std::string socket_mode = "0660";
  std::filesystem::path state_dir;  // empty = <work>/state
  int max_concurrent_jobs = 1;
  std::string log_level = "info";
  // RLIMIT_FSIZE for heygemd (SIGXFSZ ignored, so a write past it fails with EFBIG): the disk-full
  // test's stand-in for a full spool where no tmpfs can be mounted.
  std::optional<std::uint64_t> max_file_bytes;
  // The whole `models:` section (YAML, two-space indented under "models:"); empty = the default
  // (hash-init wav2lip and RetinaFace on the CPU, both preloaded).
  std::string models_section;
  // start() returns once heygemd answers ping with its models warm; false: as soon as it answers.
  bool wait_until_ready = true;
  // RLIMIT_NOFILE (soft and hard) for heygemd, as a unit without LimitNOFILE= gives it.
  std::optional<std::uint64_t> max_open_files;
  // Keys of the config's `limits:` section, e.g. {"request_timeout", "2s"}.
  std::map<std::string, std::string> limits;
};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options = {});
  ~Daemon();  // SIGTERM, then SIGKILL after a grace period
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  void start();   // and wait until it answers ping
  void launch();  // start the process only
  void wait_until_ready();  // until it answers ping; throws when it exits or takes over 180 s
  void kill9();  // crash it
  void stop();   // SIGTERM and wait
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // heygemctl --socket <ours> <args...>
  CommandResult ctl(const std::vector<std::string>& args, std::optional<uid_t> uid = std::nullopt,
                    std::optional<gid_t> gid = std::nullopt) const;
  bool ping() const;
  // Every job the daemon knows (list --all), parsed with the protocol's own parser.
  std::vector<protocol::JobStatus> jobs() const;

  // Problems with the spool: job folders without a job, temp files, scratch left by finished jobs,
  // outputs of jobs that delivered them. Empty = clean.
  std::vector<std::string> spool_problems() const;

  std::size_t open_fds() const;        // of the daemon process
  std::uint64_t resident_kib() const;  // VmRSS
  std::string log_text() const;

  const std::filesystem::path& work() const { return work_.path(); }
  const std::filesystem::path& socket() const { return socket_; }
  const std::filesystem::path& state_dir() const { return state_dir_; }
  const std::filesystem::path& config_file() const { return config_; }

 private:
  TempDir work_;
  std::filesystem::path socket_, state_dir_, config_, log_;
  std::optional<std::uint64_t> max_file_bytes_;
  bool wait_until_ready_ = true;
  std::optional<std::uint64_t> max_open_files_;
  pid_t pid_ = -1;
};

// ffprobe: whether `file` holds at least one decodable video frame.
bool is_valid_video(const std::filesystem::path& file);

// A tiny test clip with sound (size x size, `seconds` long) made with ffmpeg.
void make_tiny_clip(const std::filesystem::path& file, int size, double seconds);

std::filesystem::path heygemd_binary();
std::filesystem::path heygemctl_binary();

}  // namespace heygem::test
