// heygemd: the lip-sync daemon. It never forks: run it under systemd (Type=notify) or a shell.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/version.hpp"
#include "daemon/app/build_info.hpp"
#include "daemon/app/daemon.hpp"
#include "daemon/media/ffmpeg_log.hpp"
#include "daemon/system/heap_memory.hpp"
#include "daemon/residency/model_registry.hpp"
#include "daemon/system/journal_log.hpp"

namespace {

std::string join_devices(const std::vector<std::string>& devices) {
  std::string out;
  for (const auto& device : devices) out += (out.empty() ? "" : ", ") + device;
  return out;
}

// Exit codes: 0 clean stop / valid config, 1 runtime failure, 2 usage or config error.
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

}  // namespace

int main(int argc, char** argv) {
  // SIGHUP (reload) waits until the daemon can handle it rather than killing it while it starts;
  // run_daemon() takes it from there. Blocked before any thread exists, so none inherits it open.
  sigset_t reload_signal;
  sigemptyset(&reload_signal);
  sigaddset(&reload_signal, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &reload_signal, nullptr);
  using heygem::app::DaemonOptions;
  CLI::App cli{"heygemd: lip-sync daemon (Wav2Lip) with resident models, driven by heygemctl over a Unix socket"};
  cli.footer(
      "Exit codes: 0 clean stop (SIGTERM/SIGINT) or valid config, 1 runtime failure (socket taken, models that do "
      "not load), 2 usage or config error.\nSignals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the config.\n"
      "Environment: HEYGEM_SOCKET (socket path when --socket is not given), XDG_RUNTIME_DIR, XDG_STATE_HOME.");
  std::string config_file, socket, state_dir, log_level;
  bool check_config = false, foreground = false, version = false, build_info = false;
  cli.add_option("--config", config_file, "YAML config file (default: the embedded defaults)");
  cli.add_option("--socket", socket, "Unix socket path (default: $HEYGEM_SOCKET, the config's socket.path, "
                                     "$XDG_RUNTIME_DIR/heygem/heygemd.sock or /run/heygem/heygemd.sock)");
  cli.add_option("--state-dir", state_dir, "job store, spool and logs (default: config state_dir, "
                                           "$XDG_STATE_HOME/heygem or /var/lib/heygem)");
  cli.add_flag("--check-config", check_config, "validate the config (and show the resolved settings), then exit");
  cli.add_flag("--foreground", foreground, "stay in the foreground (heygemd never forks; kept for init scripts)");
  cli.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off (overrides logging.level)");
  cli.add_flag("--version", version, "print the version and exit");
  cli.add_flag("--build-info", build_info,
               "print what this build holds and finds (libtorch and CUDA, GPUs, FFmpeg and its hardware devices), then exit");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help / --version print and exit 0; every other parse error is a usage error: exit 2
    const int printed = cli.exit(e);
    return printed == 0 ? 0 : 2;
  }

  if (version) {
    std::cout << "heygemd " << heygem::heygem_version() << "\n";
    return 0;
  }
  if (build_info) {
    std::cout << heygem::app::build_info();
    return 0;
  }
  auto logger = heygem::system::make_service_logger("heygemd", heygem::system::LogTarget::automatic);
  spdlog::set_default_logger(logger);
  // FFmpeg's warnings and errors into the same log (journald) rather than raw stderr; this also
  // lets an input error carry the cause FFmpeg gave only in its log (ffmpeg_log.hpp)
  heygem::media::forward_ffmpeg_logs();
  // before any job: an idle daemon's memory returns to its baseline (heap_memory.hpp)
  if (!heygem::system::make_freed_heap_returnable())
    spdlog::warn("glibc refused the heap thresholds; memory freed by jobs may stay resident");

  DaemonOptions options;
  if (!config_file.empty()) options.config_file = config_file;
  if (!socket.empty()) options.socket = socket;
  if (!state_dir.empty()) options.state_dir = state_dir;
  if (!log_level.empty()) options.log_level = log_level;

  heygem::config::DaemonConfig config;
  try {
    config = heygem::app::load_daemon_config(options);
  } catch (const heygem::Error& e) {
    std::cerr << "heygemd: config error: " << e.what() << "\n";
    return kExitConfig;
  }
  if (check_config) {
    std::cout << "config OK (" << (config_file.empty() ? "embedded defaults" : config_file) << ")\n"
              << "socket: " << config.socket.path.string() << "\nstate_dir: " << config.state_dir.string() << "\n";
    for (const auto& model : config.residency.models)
      std::cout << "model " << model.name << ": "
                << (model.weights.empty() ? std::string("untrained hash-init weights") : model.weights.string()) << " on "
                << join_devices(heygem::residency::replica_devices(model)) << "\n";
    for (const auto& note : config.notes) std::cout << "note: " << note << "\n";
    return 0;
  }
  try {
    return heygem::app::run_daemon(options, std::move(config));
  } catch (const std::exception& e) {
    spdlog::critical("heygemd: {}", e.what());
    std::cerr << "heygemd: " << e.what() << "\n";
    return kExitFailure;
  }
}
