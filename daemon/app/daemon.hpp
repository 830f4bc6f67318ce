#pragma once
// heygemd itself: config -> socket (bound, or systemd's) -> model registry (preload + warm) ->
// scheduler (recovery) -> server -> READY=1; signals: SIGTERM/SIGINT stop (running work gets
// scheduler.shutdown_timeout, then is requeued), SIGHUP reloads the config and the models.
#include <filesystem>
#include <optional>
#include <string>

#include "daemon/config/config.hpp"

namespace heygem::app {

// What the command line can override.
struct DaemonOptions {
  std::optional<std::filesystem::path> config_file;
  std::optional<std::filesystem::path> socket;
  std::optional<std::filesystem::path> state_dir;
  std::optional<std::string> log_level;
};

// The config file (or the embedded defaults), then --socket / $HEYGEM_SOCKET, --state-dir and
// --log-level over it, with paths resolved. Throws heygem::Error naming the key and line.
config::DaemonConfig load_daemon_config(const DaemonOptions& options);

// Runs until SIGTERM or SIGINT; returns the process exit code (0 after a clean stop). Throws
// heygem::Error when it cannot start (socket taken, models that do not load, ...).
int run_daemon(const DaemonOptions& options, config::DaemonConfig config);

}  // namespace heygem::app
