#pragma once
// heygemd's configuration: YAML (yaml-cpp) over embedded defaults, so the daemon runs with no file.
// Every key is validated; an error names the key, the line and the cause, and unknown keys are
// rejected. The `models:` section becomes the residency::ResidencyConfig.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "daemon/cluster/cluster_config.hpp"
#include "daemon/residency/model_registry.hpp"

namespace heygem::config {

struct SocketConfig {
  std::filesystem::path path;  // empty = the default for this uid (default_socket_path)
  mode_t mode = 0660;
  std::string group;           // empty = the daemon's own group
};

struct SchedulerConfig {
  int max_concurrent_jobs = 0;  // per device; 0 = auto (jobs::concurrent_jobs_on: 1 on CPU, 4 on a GPU)
  std::chrono::milliseconds shutdown_timeout{30'000};  // running work gets this long on SIGTERM
};

struct RetentionConfig {
  std::chrono::milliseconds max_age{7LL * 24 * 3600 * 1000};  // finished jobs older than this go
  std::uint64_t max_bytes = 20ULL << 30;                      // spool total; oldest finished go first
  std::chrono::milliseconds cleanup_interval{600'000};
};

struct LimitsConfig {
  std::uint64_t max_input_bytes = 4ULL << 30;  // per input file copied into the spool
  int max_items = 256;                         // videos per job
  int max_connections = 256;
  int max_connections_per_uid = 64;     // so no one uid can take all of max_connections
  int max_pending_fds_per_uid = 256;    // fds held in one uid's unfinished frames (a frame carries <= 129)
  int fd_reserve = 256;                 // below RLIMIT_NOFILE: never handed to clients, kept for jobs
  std::chrono::milliseconds request_timeout{10'000};  // connect -> first complete request
  std::chrono::milliseconds frame_timeout{30'000};    // first byte of a frame -> its last
  std::chrono::milliseconds input_copy_timeout{600'000};  // one job's inputs into the spool
  int max_queued_jobs = 1024;           // all uids
  int max_queued_jobs_per_uid = 128;
};

// The avatar cache (daemon/pipeline/avatar_cache.hpp): the face boxes of videos seen before.
struct AvatarCacheConfig {
  std::filesystem::path directory;        // "" = $CACHE_DIRECTORY/avatar-cache, else <state_dir>/avatar-cache
  std::uint64_t max_bytes = 64ULL << 20;  // 0 = no cache
};

struct LoggingConfig {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

struct DaemonConfig {
  SocketConfig socket;
  std::filesystem::path state_dir;  // empty = the default for this uid (default_state_dir)
  SchedulerConfig scheduler;
  RetentionConfig retention;
  LimitsConfig limits;
  AvatarCacheConfig avatar_cache;
  cluster::ClusterConfig cluster;
  LoggingConfig logging;
  std::filesystem::path models_directory;  // relative weights paths resolve here
  residency::ResidencyConfig residency;
  std::vector<std::string> notes;          // things worth a log line (fallbacks taken)
};

// The YAML the daemon uses when no file is given (also documents every key).
const std::string& embedded_defaults();

// Parses `text` over the embedded defaults. `source` names it in errors ("heygemd.yaml").
// Throws heygem::Error(invalid_argument): "<source>: line N: key a.b.c: cause".
DaemonConfig parse_config(const std::string& text, const std::string& source);
// Reads and parses a file (a missing or unreadable file is an error naming it).
DaemonConfig load_config_file(const std::filesystem::path& file);
DaemonConfig default_config();

// Fills the empty socket path (common/socket_path.hpp's default), state dir and avatar cache
// directory ($CACHE_DIRECTORY, set by systemd's CacheDirectory=, else the state dir) with this uid's defaults and makes relative weights
// absolute: models.directory ("" = <state_dir>/models), falling back to ../shared/models (the
// repo's sibling data folder) with a note in `notes`.
void resolve_paths(DaemonConfig& config, uid_t uid);

// $XDG_STATE_HOME/heygem (or ~/.local/state/heygem) for a user, /var/lib/heygem for root.
std::filesystem::path default_state_dir(uid_t uid);

// "300s", "5m", "1h", "7d", "250ms", a bare number = seconds.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
// "512", "64K", "10M", "2G", "1GiB", "1.5G".
std::optional<std::uint64_t> parse_bytes(const std::string& text);

}  // namespace heygem::config
