#include "daemon/app/daemon.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/socket_path.hpp"
#include "common/version.hpp"
#include "daemon/cluster/cluster_worker.hpp"
#include "daemon/jobs/item_executor.hpp"
#include "daemon/jobs/pipeline_warmup.hpp"
#include "daemon/jobs/scheduler.hpp"
#include "daemon/jobs/store.hpp"
#include "daemon/pipeline/avatar_cache.hpp"
#include "daemon/residency/device_memory.hpp"
#include "daemon/residency/model_registry.hpp"
#include "daemon/server/dispatcher.hpp"
#include "daemon/server/listener.hpp"
#include "daemon/server/server.hpp"
#include "daemon/system/service_notifier.hpp"

namespace heygem::app {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kStatusInterval = std::chrono::seconds(5);
// While preload models load, EXTEND_TIMEOUT_USEC goes out this often, and for at most this long per
// preload model (generous: a multi-GB checkpoint from a cold disk onto a GPU, then its warm-up).
constexpr auto kExtendTimeoutPeriod = std::chrono::seconds(10);
constexpr auto kLoadBudgetPerModel = std::chrono::minutes(10);

void apply_log_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

// Clients pass fds and jobs open files: the soft limit (often 1024) goes up to the hard one (the
// unit sets LimitNOFILE=); limits.fd_reserve is kept below whatever it ends at.
void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const auto before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0)
    spdlog::info("open files: soft limit raised from {} to {}", before, limit.rlim_cur);
}

void set_signal_blocked(int signal, bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal);
  ::pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

std::size_t preload_count(const residency::ResidencyConfig& config) {
  return static_cast<std::size_t>(
      std::count_if(config.models.begin(), config.models.end(), [](const residency::ModelSpec& spec) { return spec.preload; }));
}

// Keeps systemd's start (or reload) timeout off while `config`'s preload models load, for as long
// as the result lives; nullptr when nothing is preloaded.
std::unique_ptr<system::StartTimeoutExtension> extend_timeout_while_loading(system::ServiceNotifier& notifier,
                                                                            const residency::ResidencyConfig& config) {
  const auto preloads = preload_count(config);
  if (preloads == 0) return nullptr;
  return std::make_unique<system::StartTimeoutExtension>(notifier, kExtendTimeoutPeriod,
                                                         kLoadBudgetPerModel * static_cast<int>(preloads));
}

// The avatar cache, or null when it is off (max_bytes 0) or its directory cannot be made: the
// daemon then detects every video's faces, which costs time, not results.
std::shared_ptr<const pipeline::AvatarCache> open_avatar_cache(const config::AvatarCacheConfig& config) {
  if (config.max_bytes == 0) return nullptr;
  try {
    auto cache = std::make_shared<const pipeline::AvatarCache>(
        pipeline::AvatarCacheOptions{config.directory, config.max_bytes});
    spdlog::info("avatar cache: {} (at most {} bytes)", config.directory.string(), config.max_bytes);
    return cache;
  } catch (const Error& e) {
    spdlog::warn("avatar cache off: {}", e.what());
    return nullptr;
  }
}

protocol::ModelRow to_row(const residency::ModelStatus& status) {
  protocol::ModelRow row;
  row.name = status.name;
  row.kind = status.kind;
  row.device = status.device;
  row.precision = status.precision;
  row.state = status.state;
  row.resident_bytes = status.resident_bytes;
  row.leases = status.leases;
  row.load_s = status.load_seconds;
  row.warmup_s = status.warmup_seconds;
  row.heartbeat_ms = status.last_heartbeat_ms;
  if (status.expires_at)
    row.expires_in_s = std::max(
        0.0, std::chrono::duration<double>(*status.expires_at - std::chrono::system_clock::now()).count());
  row.generation = status.generation;
  row.untrained = status.untrained;
  if (status.last_heartbeat_at)
    row.heartbeat_at_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(status.last_heartbeat_at->time_since_epoch()).count();
  if (status.keep_alive) row.keep_alive_s = std::chrono::duration<double>(*status.keep_alive).count();
  return row;
}

// heygemd's resident set (VmRSS), 0 when /proc cannot tell.
std::uint64_t resident_set_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// The daemon's parts, in the order they start (and the reverse of how they stop).
class Daemon : public server::DaemonServices {
 public:
  Daemon(const DaemonOptions& options, config::DaemonConfig config)
      : options_(options), config_(std::move(config)) {}

  int run();

  protocol::ModelsResponse models(const protocol::ModelsRequest& request) override {
    protocol::ModelsResponse response;
    try {
      if (request.action == "load") {
        if (!ready_) throw Error(ErrorCode::resource, "heygemd is still loading its models (" + loading_detail() + ")");
        registry_->load(request.name);
        response.message = "loaded " + request.name;
      } else if (request.action == "unload") {
        const auto count = registry_->unload(request.name);
        response.message = count ? "unloaded " + request.name : request.name + " was not loaded";
      }
    } catch (const Error& e) {
      // A model name that is not configured is a mistake on the command line (exit 2), as for submit.
      if (e.code() != ErrorCode::not_found) throw;
      throw Error(ErrorCode::invalid_argument, e.what());
    }
    std::map<std::string, protocol::DeviceMemoryRow> devices;
    for (const auto& status : registry_->status()) {
      response.rows.push_back(to_row(status));
      auto& device = devices[status.device];
      device.device = status.device;
      device.models_bytes += status.resident_bytes;
    }
    for (auto& [name, device] : devices) {
      try {
        if (const auto memory = residency::cuda_memory(c10::Device(name))) {
          device.allocated_bytes = memory->allocated;
          device.reserved_bytes = memory->reserved;
        }
      } catch (const std::exception&) {  // an unparsable device name has no allocator to ask
      }
      response.devices.push_back(device);
    }
    response.daemon_rss_bytes = resident_set_bytes();
    return response;
  }

  std::string reload() override {
    if (!ready_) {
      spdlog::warn("reload refused: heygemd is still loading its models");
      throw Error(ErrorCode::resource, "heygemd is still loading its models (" + loading_detail() +
                                           "); reload once `heygemctl ping` says it is ready");
    }
    std::lock_guard lock(reload_mutex_);
    notifier_.reloading();
    try {
      auto fresh = load_daemon_config(options_);
      const auto before = model_generations();
      {
        const auto extension = extend_timeout_while_loading(notifier_, fresh.residency);
        registry_->reload(fresh.residency);
        executor_->update_config(fresh.residency);
        warm_changed_devices(fresh.residency, before);
      }
      apply_log_level(fresh.logging.level);
      for (const auto& note : fresh.notes) spdlog::info("config: {}", note);
      const auto message = "reloaded " + (options_.config_file ? options_.config_file->string() : std::string("the embedded defaults")) +
                           ": " + std::to_string(fresh.residency.models.size()) + " model(s) configured" +
                           " (socket, state_dir, scheduler, retention, avatar_cache and cluster changes need a restart)";
      spdlog::info("{}", message);
      notifier_.ready(status_line());
      return message;
    } catch (const std::exception& e) {
      spdlog::error("reload failed, everything stays as it was: {}", e.what());
      notifier_.ready(status_line());
      // A new config the daemon refuses (invalid, or models that do not load) is one kind of
      // mistake for the operator: exit 2 from heygemctl, whatever stage found it.
      const auto* error = dynamic_cast<const Error*>(&e);
      if (error && error->code() == ErrorCode::resource) throw;
      throw Error(ErrorCode::invalid_argument, std::string("reload refused, the old config stays: ") + e.what());
    }
  }

  nlohmann::json validate_options(const protocol::SubmitOptions& options) override {
    executor_->validate(options);
    return protocol::to_json(options);
  }

  protocol::PongResponse readiness() override {
    if (!ready_) return {"loading", loading_detail()};
    if (const auto problem = scheduler_->storage_problem())
      return {"degraded", "new jobs are refused: the state folder cannot store them (" + *problem + ")"};
    return {};
  }

 private:
  // "loading models (1/2)": the preload models warm so far, while heygemd starts; then the pipeline's
  // warm-up item runs.
  std::string loading_detail() const {
    std::size_t warm = 0;
    for (const auto& status : registry_->status())
      if (status.state == "warm" || status.state == "busy") ++warm;
    return "loading models (" + std::to_string(std::min(warm, preload_count(config_.residency))) + "/" +
           std::to_string(preload_count(config_.residency)) + ")" +
           (warming_pipeline_ ? ", warming the pipeline (one short synthetic item per device)" : "");
  }
  using Generations = std::map<std::pair<std::string, std::string>, std::uint64_t>;  // (model, device)
  Generations model_generations() const {
    Generations generations;
    for (const auto& status : registry_->status()) generations[{status.name, status.device}] = status.generation;
    return generations;
  }
  // models.warm_pipeline: one synthetic item through the whole pipeline per device (`devices`: only
  // these, empty = every device with a preloaded generator). Never throws.
  void warm_pipeline(const residency::ResidencyConfig& config, const std::vector<std::string>& devices);
  void warm_changed_devices(const residency::ResidencyConfig& config, const Generations& before);
  // The models load here while the socket already answers; jobs wait (held) until they are warm.
  void load_models();
  void on_models_loaded(std::exception_ptr failure, double seconds);
  void reload_in_background();

  server::Listener open_listener();
  void wait_for_reload_signal();
  void start_signals();
  void schedule_cleanup();
  void schedule_status();
  void begin_shutdown(const char* why);
  std::string status_line() const;

  DaemonOptions options_;
  config::DaemonConfig config_;
  system::ServiceNotifier notifier_;
  boost::asio::io_context io_;
  std::unique_ptr<residency::ModelRegistry> registry_;
  std::unique_ptr<jobs::ItemExecutor> executor_;
  std::unique_ptr<jobs::Scheduler> scheduler_;
  std::unique_ptr<cluster::ClusterWorker> cluster_;  // set in cluster mode
  std::unique_ptr<server::Dispatcher> dispatcher_;
  std::unique_ptr<server::Server> server_;
  std::optional<boost::asio::signal_set> reload_signal_;  // SIGHUP, from the first moment of run()
  std::optional<boost::asio::signal_set> signals_;        // SIGTERM, SIGINT, once ready
  bool reload_when_ready_ = false;  // a SIGHUP came while the models loaded (io thread only)
  std::optional<boost::asio::steady_timer> cleanup_timer_, status_timer_;
  boost::asio::thread_pool background_{1};  // reloads from SIGHUP, the shutdown wait
  std::mutex reload_mutex_;
  bool stopping_ = false;
  std::atomic<bool> shutting_down_{false};  // stopping_, for the warm-up item on the loader thread
  std::atomic<bool> ready_{false};
  std::atomic<bool> warming_pipeline_{false};
  int items_at_once_ = 1;  // the job slots over all devices (the items' thread plan)
  std::thread loader_;
  int exit_code_ = 0;
};

server::Listener Daemon::open_listener() {
  const auto activated = system::activated_sockets();
  if (!activated.empty()) {
    spdlog::info("using the socket systemd passed (fd {})", activated.front());
    return server::Listener::adopt(activated.front());
  }
  auto listener = server::Listener::bind({config_.socket.path, config_.socket.mode, config_.socket.group, 128});
  spdlog::info("listening on {} (mode {:o})", listener.path().string(), config_.socket.mode);
  return listener;
}

std::string Daemon::status_line() const {
  if (const auto problem = scheduler_->storage_problem()) return "refusing new jobs: " + *problem;
  std::size_t warm = 0;
  for (const auto& status : registry_->status())
    if (status.state == "warm" || status.state == "busy") ++warm;
  const auto counts = scheduler_->counts();
  return std::to_string(warm) + " model(s) warm, " + std::to_string(counts.running) + " job(s) running, " +
         std::to_string(counts.queued) + " queued";
}

// A reload asked for while the models load (systemd's notify-reload, a user's kill -HUP) waits
// until heygemd is ready: the default action would kill the daemon in the middle of its start.
void Daemon::wait_for_reload_signal() {
  reload_signal_->async_wait([this](const boost::system::error_code& error, int) {
    if (error || stopping_) return;
    if (ready_) {
      spdlog::info("SIGHUP: reloading the config");
      reload_in_background();
    } else if (!reload_when_ready_) {
      spdlog::info("SIGHUP during start-up: the config is reloaded once the models are loaded");
      reload_when_ready_ = true;
    }
    wait_for_reload_signal();
  });
}

void Daemon::reload_in_background() {
  boost::asio::post(background_, [this] {
    try {
      reload();
    } catch (const std::exception&) {
      // reload() logged it; the daemon serves on with the old config.
    }
  });
}

void Daemon::start_signals() {
  signals_.emplace(io_, SIGTERM, SIGINT);
  signals_->async_wait([this](const boost::system::error_code& error, int signal) {
    if (error) return;
    begin_shutdown(signal == SIGTERM ? "SIGTERM" : "SIGINT");
  });
}

void Daemon::schedule_cleanup() {
  cleanup_timer_->expires_after(config_.retention.cleanup_interval);
  cleanup_timer_->async_wait([this](const boost::system::error_code& error) {
    if (error || stopping_) return;
    boost::asio::post(background_, [this] {
      try {
        const auto report = scheduler_->cleanup();
        if (report.removed_jobs) spdlog::info("retention: removed {} job(s); the spool holds {} bytes", report.removed_jobs, report.spool_bytes);
      } catch (const std::exception& e) {
        spdlog::error("retention: {}", e.what());
      }
    });
    schedule_cleanup();
  });
}

// STATUS= now and then; WATCHDOG=1 only while the scheduler's workers show signs of life.
void Daemon::schedule_status() {
  const auto watchdog = notifier_.watchdog_interval();
  const auto interval = watchdog ? std::min<Clock::duration>(*watchdog, kStatusInterval) : Clock::duration(kStatusInterval);
  status_timer_->expires_after(interval);
  status_timer_->async_wait([this, watchdog](const boost::system::error_code& error) {
    if (error || stopping_) return;
    notifier_.status(status_line());
    // Workers beat at least once a second when idle and on every event when busy; a long silence
    // while running means a stuck pipeline thread, and systemd should restart us. systemd arms the
    // watchdog at READY=1; before it, EXTEND_TIMEOUT_USEC covers the model loads.
    if (watchdog && ready_ && Clock::now() - scheduler_->last_beat() < std::max<Clock::duration>(*watchdog * 4, std::chrono::minutes(2)))
      notifier_.watchdog();
    schedule_status();
  });
}

void Daemon::begin_shutdown(const char* why) {
  if (stopping_) return;
  stopping_ = true;
  shutting_down_ = true;
  spdlog::info("{}: stopping (running work gets {} ms, then is requeued)", why, config_.scheduler.shutdown_timeout.count());
  notifier_.stopping();
  server_->stop_accepting();
  if (cleanup_timer_) cleanup_timer_->cancel();
  if (status_timer_) status_timer_->cancel();
  if (signals_) signals_->cancel();
  if (reload_signal_) reload_signal_->cancel();
  boost::asio::post(background_, [this] {
    if (cluster_) cluster_->hand_back();  // at once: another worker reruns them
    scheduler_->shutdown(config_.scheduler.shutdown_timeout);
    if (cluster_) cluster_->stop();
    boost::asio::post(io_, [this] {
      server_->stop_all();
      io_.stop();
    });
  });
}

int Daemon::run() {
  // main() blocked SIGHUP; from here it is queued for wait_for_reload_signal().
  reload_signal_.emplace(io_, SIGHUP);
  wait_for_reload_signal();
  set_signal_blocked(SIGHUP, false);
  raise_open_file_limit();
  jobs::create_private_directories(config_.state_dir);
  for (const auto& note : config_.notes) spdlog::info("config: {}", note);
  auto listener = open_listener();
  start_signals();  // before anything slow: a SIGHUP or SIGTERM during start-up is handled, not fatal

  registry_ = residency::make_model_registry(config_.residency);
  executor_ = std::make_unique<jobs::ItemExecutor>(*registry_, config_.residency);
  executor_->set_avatar_cache(open_avatar_cache(config_.avatar_cache));
  jobs::SchedulerSettings settings;
  settings.max_concurrent_jobs = config_.scheduler.max_concurrent_jobs;
  settings.max_input_bytes = config_.limits.max_input_bytes;
  settings.retention_max_age = config_.retention.max_age;
  settings.retention_max_bytes = config_.retention.max_bytes;
  settings.input_copy_timeout = config_.limits.input_copy_timeout;
  settings.max_queued_jobs = static_cast<std::size_t>(config_.limits.max_queued_jobs);
  settings.max_queued_jobs_per_uid = static_cast<std::size_t>(config_.limits.max_queued_jobs_per_uid);
  // every device runs its job slots at once: the CPU threads of each item are sized for all of them
  items_at_once_ = static_cast<int>(jobs::concurrent_jobs_on(executor_->devices(), settings.max_concurrent_jobs));
  executor_->set_items_at_once(items_at_once_);
  scheduler_ = std::make_unique<jobs::Scheduler>(config_.state_dir, settings, *executor_);
  std::string preloads;  // "wav2lip,retinaface": a queued job's progress says it waits for them
  for (const auto& spec : config_.residency.models)
    if (spec.preload) preloads += (preloads.empty() ? "" : ",") + spec.name;
  // In cluster mode nothing may start before the local copies of cluster jobs from before a crash
  // are cancelled (their entries are taken again from the stream).
  const bool hold_for_cluster = preloads.empty() && config_.cluster.enabled();
  if (!preloads.empty()) scheduler_->hold(preloads);
  else if (hold_for_cluster) scheduler_->hold("cluster recovery");
  const auto recovered = scheduler_->start();
  spdlog::info("job store {}: {} queued ({} interrupted and requeued), {} finished, {} quarantined, {} orphan spool folder(s) removed",
               config_.state_dir.string(), recovered.queued, recovered.requeued, recovered.finished,
               recovered.quarantined, recovered.orphans_removed);
  if (config_.cluster.enabled()) {
    cluster_ = std::make_unique<cluster::ClusterWorker>(
        config_.cluster, *scheduler_, [this](const protocol::SubmitOptions& options) { return validate_options(options); },
        config_.state_dir);
    cluster_->recover_local_jobs();
    if (hold_for_cluster) scheduler_->release();
  }

  // The socket answers from here on: ping says "loading models (k/n)", submit queues.
  dispatcher_ = std::make_unique<server::Dispatcher>(*scheduler_, *this, server::DispatchLimits{config_.limits.max_items});
  server::ServerLimits server_limits;
  server_limits.max_connections = config_.limits.max_connections;
  server_limits.max_connections_per_uid = config_.limits.max_connections_per_uid;
  server_limits.max_pending_fds_per_uid = config_.limits.max_pending_fds_per_uid;
  server_limits.fd_reserve = config_.limits.fd_reserve;
  server_limits.request_timeout = config_.limits.request_timeout;
  server_limits.frame_timeout = config_.limits.frame_timeout;
  server_ = std::make_unique<server::Server>(io_, listener.release_fd(), *dispatcher_, server_limits);
  server_->start();
  cleanup_timer_.emplace(io_);
  status_timer_.emplace(io_);
  schedule_cleanup();
  schedule_status();
  notifier_.status("loading " + std::to_string(preload_count(config_.residency)) + " model(s)");
  loader_ = std::thread([this] { load_models(); });

  io_.run();

  if (loader_.joinable()) loader_.join();
  background_.join();
  dispatcher_.reset();  // waits for replies in flight
  server_.reset();
  cluster_.reset();
  scheduler_.reset();
  registry_->stop();
  spdlog::info("heygemd stopped");
  return exit_code_;
}

void Daemon::load_models() {
  const auto load_start = Clock::now();
  std::exception_ptr failure;
  double seconds = 0;
  try {
    const auto extension = extend_timeout_while_loading(notifier_, config_.residency);
    registry_->start();
    seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
    // Jobs are still held: the warm-up item has the devices to itself.
    warm_pipeline(config_.residency, {});
  } catch (...) {
    failure = std::current_exception();
    seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
  }
  boost::asio::post(io_, [this, failure, seconds] { on_models_loaded(failure, seconds); });
}

void Daemon::warm_pipeline(const residency::ResidencyConfig& config, const std::vector<std::string>& devices) {
  if (!config.warm_pipeline || shutting_down_) return;
  try {
    const auto plans = jobs::plan_pipeline_warmup(config, *registry_, devices);
    if (plans.empty()) return;
    warming_pipeline_ = true;
    notifier_.status("warming the pipeline on " + std::to_string(plans.size()) + " device(s)");
    jobs::PipelineWarmupSettings settings;
    settings.folder = config_.state_dir / "pipeline-warmup";
    settings.items_at_once = items_at_once_;
    settings.cancelled = [this] { return shutting_down_.load(); };
    jobs::warm_pipeline(*registry_, config, plans, settings);
  } catch (const std::exception& e) {  // jobs::warm_pipeline does not throw; planning should not either
    spdlog::warn("pipeline warm-up not run: {}", e.what());
  }
  warming_pipeline_ = false;
}

// After a reload: the devices where a model the warm-up item would use is new or was loaded anew.
// New jobs wait meanwhile (held under the generators' names, as at start); running ones go on, their
// forwards batched with the item's on the device's queue.
void Daemon::warm_changed_devices(const residency::ResidencyConfig& config, const Generations& before) {
  if (!config.warm_pipeline) return;
  const auto after = model_generations();
  const auto changed = [&](const std::string& model, const std::string& device) {
    if (model.empty()) return false;
    const auto old = before.find({model, device});
    const auto now = after.find({model, device});
    return old == before.end() || now == after.end() || old->second != now->second;
  };
  std::vector<std::string> devices;
  std::string generators;
  for (const auto& plan : jobs::plan_pipeline_warmup(config, *registry_)) {
    if (!changed(plan.generator, plan.device) && !changed(plan.detector, plan.device)) continue;
    devices.push_back(plan.device);
    if (("," + generators + ",").find("," + plan.generator + ",") == std::string::npos)
      generators += (generators.empty() ? "" : ",") + plan.generator;
  }
  if (devices.empty()) return;
  scheduler_->hold(generators);
  struct Release {
    jobs::Scheduler& scheduler;
    ~Release() { scheduler.release(); }
  } release{*scheduler_};
  warm_pipeline(config, devices);
}

void Daemon::on_models_loaded(std::exception_ptr failure, double seconds) {
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      spdlog::critical("heygemd: the models did not load: {}", e.what());
    }
    exit_code_ = 1;
    begin_shutdown("model load failure");
    return;
  }
  if (stopping_) return;
  spdlog::info("models ready in {:.2f} s", seconds);
  ready_ = true;
  scheduler_->release();
  if (cluster_) cluster_->start();
  notifier_.ready(status_line());
  spdlog::info("heygemd {} ready: {}", heygem_version(), status_line());
  if (reload_when_ready_) {
    spdlog::info("reloading the config asked for (SIGHUP) during start-up");
    reload_in_background();
  }
}

}  // namespace

config::DaemonConfig load_daemon_config(const DaemonOptions& options) {
  auto config = options.config_file ? config::load_config_file(*options.config_file) : config::default_config();
  const auto environment = SocketEnvironment::current();
  if (options.socket)
    config.socket.path = *options.socket;
  else if (!environment.heygem_socket.empty())
    config.socket.path = environment.heygem_socket;
  if (options.state_dir) config.state_dir = *options.state_dir;
  if (options.log_level) {
    const auto level = spdlog::level::from_str(*options.log_level);
    if (level == spdlog::level::off && *options.log_level != "off")
      throw Error(ErrorCode::invalid_argument, "--log-level: expected trace, debug, info, warn, error, critical or off, got \"" +
                                                   *options.log_level + "\"");
    config.logging.level = *options.log_level;
  }
  config::resolve_paths(config, ::geteuid());
  residency::validate_config(config.residency);
  return config;
}

int run_daemon(const DaemonOptions& options, config::DaemonConfig config) {
  apply_log_level(config.logging.level);
  Daemon daemon(options, std::move(config));
  return daemon.run();
}

}  // namespace heygem::app
