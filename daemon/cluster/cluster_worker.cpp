#include "daemon/cluster/cluster_worker.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/job_id.hpp"

namespace heygem::cluster {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kCancelPoll = 200ms;       // a cancel reaches the pipeline within this (plus its check)
constexpr auto kHeartbeat = 1s;           // `heygemctl --cluster workers` shows it
constexpr auto kBlock = 500ms;            // XREADGROUP BLOCK: how late a stop is noticed while idle
constexpr auto kSlotWait = 100ms;         // the same while every slot is busy
constexpr int kMaxClaimScans = 100;        // XAUTOCLAIM calls per turn (each scans ~10 pending entries)
constexpr std::size_t kMaxDeadSpecBytes = 64 * 1024;
constexpr long long kHandBackIdleMs = 365LL * 24 * 3600 * 1000;  // idle enough for any claim_idle

std::string now_ms() { return std::to_string(jobs::now_unix_ms()); }

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || !name[0]) return "heygemd";
  return name;
}

// The job id a spec names when it is at least JSON with a valid one (the dead letter says which job).
std::string job_id_guess(const std::string& raw) {
  try {
    const auto json = nlohmann::json::parse(raw);
    if (json.is_object() && json.contains("job_id") && json["job_id"].is_string() &&
        is_valid_job_id(json["job_id"].get<std::string>()))
      return json["job_id"].get<std::string>();
  } catch (const std::exception&) {
  }
  return "";
}

std::string entry_field_names(const Fields& fields) {
  std::string names;
  for (const auto& [key, value] : fields) names += (names.empty() ? "" : ", ") + key.substr(0, 64);
  return names.empty() ? "none" : names;
}

// Entries of an XREADGROUP / XAUTOCLAIM reply part: [[id, [field, value, ...]], ...].
std::vector<std::pair<std::string, Fields>> stream_entries(const RedisValue& list) {
  std::vector<std::pair<std::string, Fields>> entries;
  for (const auto& entry : list.elements) {
    if (entry.elements.size() < 2) continue;
    entries.emplace_back(entry.elements[0].str(), field_pairs(entry.elements[1]));
  }
  return entries;
}

}  // namespace

struct ClusterWorker::Run {
  std::string job_id, entry_id, token, local_id, raw_spec;
  int attempt = 0;
  std::vector<PendingOutput> outputs;
  std::shared_ptr<jobs::EventSink> sink;
  std::optional<protocol::EventBody> terminal;  // reporter thread only
  bool fenced = false, published = false;       // reporter thread only
  std::atomic<bool> ended{false};               // the local job reached a terminal event
  std::atomic<bool> cancel_requested{false};    // the cluster asked (the hash's cancel flag)
  std::atomic<bool> handed_back{false};
  std::atomic<bool> lost{false};                // another worker runs it now
};

// Receives the local job's events under the scheduler's lock: queues them, nothing more.
class ClusterWorker::Forwarder : public jobs::EventSink {
 public:
  Forwarder(ClusterWorker& worker, std::string local_id) : worker_(worker), local_id_(std::move(local_id)) {}
  void deliver(const protocol::Response& message) override {
    {
      std::lock_guard lock(worker_.queue_mutex_);
      worker_.events_.push_back({local_id_, message});
    }
    worker_.queue_changed_.notify_one();
  }

 private:
  ClusterWorker& worker_;
  std::string local_id_;
};

ClusterWorker::ClusterWorker(ClusterConfig config, jobs::Scheduler& scheduler, OptionsValidator validate,
                             const std::filesystem::path& state_dir)
    : config_(std::move(config)),
      address_(parse_redis_address(config_.address)),
      consumer_(config_.consumer.empty() ? host_name() : config_.consumer),
      owner_(::geteuid()),
      scheduler_(scheduler),
      validate_(std::move(validate)),
      roots_(config_.media_roots),
      ledger_dir_(state_dir / "cluster-runs") {
  names_.stream = config_.stream;
  names_.group = config_.group;
  names_.dead_letter = config_.dead_letter_stream;
  credentials_.user = config_.user.empty() ? address_.user : config_.user;  // redis://USER@HOST or cluster.user
  if (!config_.password_file.empty()) credentials_.password = read_password_file(config_.password_file);
  std::filesystem::create_directories(ledger_dir_);
}

ClusterWorker::~ClusterWorker() { stop(); }

std::filesystem::path ClusterWorker::ledger_path(const std::string& local_id) const { return ledger_dir_ / local_id; }

std::size_t ClusterWorker::recover_local_jobs() {
  std::size_t cancelled = 0;
  std::error_code ec;
  for (const auto& file : std::filesystem::directory_iterator(ledger_dir_, ec)) {
    const auto local_id = file.path().filename().string();
    if (is_valid_job_id(local_id)) {
      try {
        scheduler_.cancel(local_id, owner_);
        ++cancelled;
      } catch (const Error&) {  // finished or gone: nothing runs
      }
    }
    std::filesystem::remove(file.path(), ec);
  }
  if (cancelled)
    spdlog::info("cluster: cancelled {} local copy(ies) of cluster jobs from before the restart; their entries are taken again from {}",
                 cancelled, names_.stream);
  return cancelled;
}

void ClusterWorker::start() {
  if (started_.exchange(true)) return;
  spdlog::info("cluster: worker {} on {} (stream {}, group {}, claim_idle {} ms, max_attempts {})", consumer_,
               address_.text(), names_.stream, names_.group, config_.claim_idle.count(), config_.max_attempts);
  intake_ = std::thread([this] { intake_loop(); });
  reporter_ = std::thread([this] { reporter_loop(); });
}

void ClusterWorker::ensure_group(RedisSession& redis) {
  try {
    redis.command({"XGROUP", "CREATE", names_.stream, names_.group, "0", "MKSTREAM"});
    spdlog::info("cluster: created consumer group {} on {}", names_.group, names_.stream);
  } catch (const RedisCommandError& e) {
    if (std::string(e.what()).rfind("BUSYGROUP", 0) != 0) throw;
  }
}

void ClusterWorker::intake_loop() {
  RedisSession redis(address_, credentials_);
  bool group_ready = false, reported_down = false;
  bool own_pending_done = false;
  std::string own_cursor = "0";
  std::string claim_cursor = "0-0";
  while (!intake_stopping_) {
    try {
      if (!group_ready) {
        ensure_group(redis);
        group_ready = true;
        if (reported_down) spdlog::info("cluster: Redis at {} is back", address_.text());
        reported_down = false;
      }
      // Woken by the scheduler when a run ends (no poll: a job queued here starts as soon as a slot
      // frees); the timeout only bounds how late a stop is noticed.
      if (!scheduler_.wait_for_free_slot(kSlotWait)) continue;
      std::optional<std::pair<std::string, Fields>> entry;
      if (!own_pending_done) {
        // Entries delivered to this consumer name before a restart and never acknowledged.
        const auto reply = redis.command({"XREADGROUP", "GROUP", names_.group, consumer_, "COUNT", "1", "STREAMS",
                                          names_.stream, own_cursor});
        const auto entries = reply.elements.empty() ? decltype(stream_entries(reply)){}
                                                    : stream_entries(reply.elements[0].elements.at(1));
        if (entries.empty()) own_pending_done = true;
        else entry = entries.front(), own_cursor = entries.front().first;
      }
      // Entries idle past claim_idle (a dead worker's, or handed back): the whole pending list is
      // scanned (XAUTOCLAIM looks at a few entries per call) before blocking for new ones.
      for (int scans = 0; !entry && scans < kMaxClaimScans; ++scans) {
        const auto reply = redis.command({"XAUTOCLAIM", names_.stream, names_.group, consumer_,
                                          std::to_string(config_.claim_idle.count()), claim_cursor, "COUNT", "1"});
        claim_cursor = reply.elements.at(0).str();
        const auto entries = stream_entries(reply.elements.at(1));
        if (!entries.empty()) {
          entry = entries.front();
          spdlog::info("cluster: took over entry {} (idle past claim_idle, or handed back)", entry->first);
        }
        if (claim_cursor == "0-0") break;
      }
      if (!entry) {
        const auto reply = redis.command({"XREADGROUP", "GROUP", names_.group, consumer_, "COUNT", "1", "BLOCK",
                                          std::to_string(kBlock.count()), "STREAMS", names_.stream, ">"},
                                         kBlock + 5s);
        if (reply.is_nil() || reply.elements.empty()) continue;
        const auto entries = stream_entries(reply.elements[0].elements.at(1));
        if (entries.empty()) continue;
        entry = entries.front();
        // The read blocked: a local job may have taken the slot meanwhile. Rather than queue the
        // entry here behind it, leave it claimable at once by an idle worker (or by this one when
        // its slot frees); nothing ran, so nothing counts.
        if (!scheduler_.wait_for_free_slot(0ms)) {
          redis.command({"XCLAIM", names_.stream, names_.group, consumer_, "0", entry->first, "IDLE",
                         std::to_string(kHandBackIdleMs), "JUSTID"});
          spdlog::debug("cluster: entry {} came while every slot is busy; left for any free worker", entry->first);
          claim_cursor = "0-0";
          continue;
        }
      }
      take(redis, entry->first, entry->second);
    } catch (const RedisUnavailable& e) {
      if (!reported_down) spdlog::warn("cluster: {}; retrying", e.what());
      reported_down = true;
      group_ready = false;
      std::this_thread::sleep_for(500ms);
    } catch (const std::exception& e) {
      spdlog::error("cluster: intake: {}", e.what());
      group_ready = false;  // a NOGROUP after Redis lost its data: create the group again
      std::this_thread::sleep_for(500ms);
    }
  }
}

void ClusterWorker::dead_letter(RedisSession& redis, const std::string& entry_id, const std::string& job_id,
                                const std::string& raw_spec, const std::string& reason) {
  spdlog::warn("cluster: entry {}{} goes to {}: {}", entry_id, job_id.empty() ? "" : " (job " + job_id + ")",
               names_.dead_letter, reason);
  const auto hash = job_id.empty() ? std::string() : names_.job_key(job_id);
  const auto events = job_id.empty() ? std::string() : names_.events_key(job_id);
  redis.command({"EVAL", kDeadLetterScript, "4", hash, names_.stream, names_.dead_letter, events, names_.group,
                 entry_id, reason, job_id, raw_spec.substr(0, kMaxDeadSpecBytes), consumer_, now_ms(),
                 encode_event(job_id.empty() ? std::string(12, '0') : job_id, protocol::FailedEvent{reason}),
                 std::to_string(config_.events_maxlen), std::to_string(config_.retention.count() / 1000)});
}

UniqueFd ClusterWorker::open_input(RedisSession& redis, const ClusterJobSpec& spec, const MediaRef& ref,
                                   std::size_t index) {
  if (!ref.inline_bytes) return roots_.open_input(ref.path);
  const auto key = names_.input_key(spec.job_id, index);
  const auto stored = redis.command({"STRLEN", key}).as_integer();
  if (stored == 0)
    throw Error(ErrorCode::invalid_argument, "inline input " + ref.name + ": " + key + " is missing (expired, or never stored)");
  if (static_cast<std::uint64_t>(stored) != *ref.inline_bytes)
    throw Error(ErrorCode::invalid_argument, "inline input " + ref.name + ": " + key + " holds " + std::to_string(stored) +
                                                 " bytes, the spec says " + std::to_string(*ref.inline_bytes));
  const auto value = redis.command({"GET", key}, 60s);
  UniqueFd fd(::memfd_create("heygem-inline", MFD_CLOEXEC));
  if (!fd.valid()) throw Error(ErrorCode::resource, std::string("memfd_create: ") + std::strerror(errno));
  std::size_t written = 0;
  while (written < value.text.size()) {
    const auto n = ::write(fd.get(), value.text.data() + written, value.text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorCode::resource, "inline input " + ref.name + ": " + std::strerror(errno));
    written += static_cast<std::size_t>(n);
  }
  ::lseek(fd.get(), 0, SEEK_SET);
  return fd;
}

void ClusterWorker::take(RedisSession& redis, const std::string& entry_id, const Fields& fields) {
  const auto raw = field(fields, "spec");
  if (raw.empty()) {
    dead_letter(redis, entry_id, "", "", "the entry has no \"spec\" field (its fields: " + entry_field_names(fields) + ")");
    return;
  }
  ClusterJobSpec spec;
  nlohmann::json options;
  try {
    spec = parse_job_spec(raw);
    options = validate_(spec.options);
    check_inline_sizes(spec, config_.max_inline_bytes);
  } catch (const Error& e) {
    dead_letter(redis, entry_id, job_id_guess(raw), raw, e.what());
    return;
  }
  auto run = std::make_shared<Run>();
  run->job_id = spec.job_id;
  run->entry_id = entry_id;
  run->token = consumer_ + "/" + new_job_id();
  run->raw_spec = raw;
  const auto begin = redis.command(
      {"EVAL", kBeginScript, "2", names_.job_key(spec.job_id), names_.events_key(spec.job_id), run->token, consumer_,
       now_ms(), std::to_string(config_.max_attempts), std::to_string(config_.events_maxlen),
       encode_event(spec.job_id, protocol::CancelledEvent{}), std::to_string(config_.retention.count() / 1000), entry_id,
       raw});
  const auto verdict = begin.elements.at(0).str();
  if (verdict == "finished" || verdict == "cancelled") {
    redis.command({"XACK", names_.stream, names_.group, entry_id});
    spdlog::info("cluster: job {} is {} already; entry {} acknowledged", spec.job_id, begin.elements.at(1).str(), entry_id);
    return;
  }
  if (verdict == "duplicate") {
    dead_letter(redis, entry_id, spec.job_id, raw,
                "job id " + spec.job_id + " belongs to entry " + begin.elements.at(1).str() + " already");
    return;
  }
  if (verdict == "exhausted") {
    const auto last = begin.elements.size() > 2 ? begin.elements[2].str() : std::string();
    dead_letter(redis, entry_id, spec.job_id, raw,
                "gave up after " + begin.elements.at(1).str() + " attempt(s)" + (last.empty() ? "" : ": " + last));
    return;
  }
  run->attempt = static_cast<int>(begin.elements.at(1).as_integer());
  std::string local_id;
  try {
    jobs::SubmitRequest request;
    request.owner = owner_;
    request.options = options;
    request.audio = {spec.audio.name, open_input(redis, spec, spec.audio, 0)};
    for (std::size_t i = 0; i < spec.videos.size(); ++i) {
      request.videos.push_back({spec.videos[i].name, open_input(redis, spec, spec.videos[i], i + 1)});
      auto output = roots_.create_output(spec.outputs[i], spec.job_id + "-" + run->token.substr(run->token.size() - 12),
                                         spec.job_id);
      request.output_names.push_back(std::filesystem::path(spec.outputs[i]).filename().string());
      request.outputs.push_back(output.take_file());
      run->outputs.push_back(std::move(output));
    }
    local_id = scheduler_.submit(std::move(request)).id;
  } catch (const Error& e) {
    run->outputs.clear();  // removes the temporary files
    if (e.code() == ErrorCode::resource || e.code() == ErrorCode::internal) {
      // This box cannot take it now (a full queue or disk): another worker may.
      spdlog::warn("cluster: job {}: {}; handing it back", spec.job_id, e.what());
      redis.command({"EVAL", kRequeueScript, "3", names_.job_key(spec.job_id), names_.events_key(spec.job_id),
                     names_.stream, run->token, e.what(), "1", encode_event(spec.job_id, protocol::QueuedEvent{1}),
                     std::to_string(config_.events_maxlen), names_.group, consumer_, entry_id,
                     std::to_string(kHandBackIdleMs)});
      std::this_thread::sleep_for(1s);
      return;
    }
    dead_letter(redis, entry_id, spec.job_id, raw, e.what());
    return;
  }
  run->local_id = local_id;
  run->sink = std::make_shared<Forwarder>(*this, local_id);
  {
    std::lock_guard lock(mutex_);
    runs_[local_id] = run;
  }
  std::ofstream(ledger_path(local_id)) << spec.job_id << ' ' << entry_id << '\n';
  spdlog::info("cluster: job {} (entry {}, attempt {}) runs here as local job {}", spec.job_id, entry_id, run->attempt,
               local_id);
  scheduler_.watch(local_id, owner_, run->sink, jobs::WatchMode::stream);
}

void ClusterWorker::forward(RedisSession& redis, Run& run, const protocol::JobEvent& event) {
  redis.command({"XADD", names_.events_key(run.job_id), "MAXLEN", "~", std::to_string(config_.events_maxlen), "*",
                 "event", encode_event(run.job_id, event.body)});
}

bool ClusterWorker::finish(RedisSession& redis, Run& run) {
  if (run.handed_back || run.lost) return true;
  auto snapshot = scheduler_.status(run.local_id, owner_);
  snapshot.job_id = run.job_id;
  const auto snapshot_json = protocol::to_json(snapshot).dump();
  const auto record = [&](const std::string& state, const std::string& error, protocol::EventBody event) {
    const auto verdict = redis.command({"EVAL", kFinishScript, "3", names_.job_key(run.job_id), names_.stream,
                                        names_.events_key(run.job_id), run.token, names_.group, run.entry_id, state,
                                        error, snapshot_json, encode_event(run.job_id, std::move(event)), now_ms(),
                                        std::to_string(config_.events_maxlen),
                                        std::to_string(config_.retention.count() / 1000)});
    if (verdict.str() != "ok") {
      spdlog::warn("cluster: job {}: another worker took it over; this run's end ({}) is not recorded", run.job_id, state);
      return false;
    }
    spdlog::info("cluster: job {} {}{}", run.job_id, state, error.empty() ? "" : ": " + error);
    return true;
  };
  std::string failure;
  if (std::holds_alternative<protocol::DoneEvent>(*run.terminal)) {
    if (!run.fenced) {
      const auto verdict = redis.command({"EVAL", kFenceScript, "1", names_.job_key(run.job_id), run.token}).str();
      if (verdict == "lost") {
        spdlog::warn("cluster: job {}: another worker took it over; this run's outputs are dropped", run.job_id);
        return true;
      }
      if (verdict == "cancel") {
        record("cancelled", "", protocol::CancelledEvent{});
        return true;
      }
      run.fenced = true;
    }
    if (!run.published) {
      try {
        for (auto& output : run.outputs) output.publish();
        run.published = true;
      } catch (const Error& e) {
        failure = e.what();
      }
    }
    if (failure.empty()) {
      record("done", "", *run.terminal);
      return true;
    }
  } else if (std::holds_alternative<protocol::CancelledEvent>(*run.terminal)) {
    record("cancelled", "", protocol::CancelledEvent{});
    return true;
  } else {
    failure = std::get<protocol::FailedEvent>(*run.terminal).cause;
  }
  if (run.attempt >= config_.max_attempts) {
    const auto reason = "failed after " + std::to_string(run.attempt) + " attempt(s): " + failure;
    if (record("failed", reason, protocol::FailedEvent{reason})) {
      redis.command({"XADD", names_.dead_letter, "*", "entry", run.entry_id, "job", run.job_id, "reason", reason,
                     "worker", consumer_, "at_ms", now_ms(), "spec", run.raw_spec.substr(0, kMaxDeadSpecBytes)});
      spdlog::warn("cluster: job {} goes to {}: {}", run.job_id, names_.dead_letter, reason);
    }
    return true;
  }
  const auto verdict = redis.command({"EVAL", kRequeueScript, "3", names_.job_key(run.job_id),
                                      names_.events_key(run.job_id), names_.stream, run.token, failure, "0",
                                      encode_event(run.job_id, protocol::QueuedEvent{1}),
                                      std::to_string(config_.events_maxlen), names_.group, consumer_, run.entry_id,
                                      std::to_string(kHandBackIdleMs)});
  spdlog::warn("cluster: job {} failed on attempt {} of {} ({}): {}", run.job_id, run.attempt, config_.max_attempts,
               failure, verdict.str() == "ok" ? "back in the queue" : "another worker has it");
  return true;
}

void ClusterWorker::keep_alive(RedisSession& redis) {
  std::vector<std::string> args{"EVAL", kKeepAliveScript, "1", names_.stream, names_.group, consumer_};
  {
    std::lock_guard lock(mutex_);
    for (const auto& [local_id, run] : runs_)
      if (!run->handed_back && !run->lost) args.push_back(run->entry_id);
  }
  if (args.size() > 6) redis.command(args);
}

void ClusterWorker::poll_cancels(RedisSession& redis) {
  std::vector<std::shared_ptr<Run>> active;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [local_id, run] : runs_)
      if (!run->ended && !run->handed_back && !run->lost && !run->cancel_requested) active.push_back(run);
  }
  for (const auto& run : active) {
    const auto reply = redis.command({"HMGET", names_.job_key(run->job_id), "cancel", "run"});
    const bool cancel = reply.elements.at(0).str() == "1";
    const bool taken = reply.elements.at(1).str() != run->token;
    if (!cancel && !taken) continue;
    if (taken) {
      run->lost = true;
      spdlog::warn("cluster: job {} was taken over by another worker; stopping this run", run->job_id);
    } else {
      run->cancel_requested = true;
      spdlog::info("cluster: job {}: cancel requested; stopping local job {}", run->job_id, run->local_id);
    }
    try {
      scheduler_.cancel(run->local_id, owner_);
    } catch (const Error&) {  // it ended meanwhile
    }
  }
}

void ClusterWorker::heartbeat(RedisSession& redis, const std::string& state) {
  nlohmann::json running = nlohmann::json::array();
  {
    std::lock_guard lock(mutex_);
    for (const auto& [local_id, run] : runs_)
      if (!run->ended && !run->handed_back && !run->lost) running.push_back(run->job_id);
  }
  const auto counts = scheduler_.counts();
  const nlohmann::json beat{{"consumer", consumer_},
                            {"host", host_name()},
                            {"pid", ::getpid()},
                            {"state", state},
                            {"slots", counts.slots},
                            {"running", running},
                            {"local_running", counts.running},
                            {"local_queued", counts.queued},
                            {"seen_ms", jobs::now_unix_ms()}};
  redis.command({"HSET", names_.workers_key(), consumer_, beat.dump()});
}

void ClusterWorker::forget(const std::string& local_id) {
  {
    std::lock_guard lock(mutex_);
    runs_.erase(local_id);
  }
  std::error_code ec;
  std::filesystem::remove(ledger_path(local_id), ec);
}

void ClusterWorker::reporter_loop() {
  RedisSession redis(address_, credentials_);
  std::vector<std::shared_ptr<Run>> finishing;
  auto next_keep_alive = Clock::now(), next_cancel_poll = Clock::now(), next_heartbeat = Clock::now();
  const auto keep_alive_every = std::max<std::chrono::milliseconds>(config_.claim_idle / 4, 100ms);
  bool reported_down = false;
  for (;;) {
    std::deque<QueuedMessage> batch;
    {
      std::unique_lock lock(queue_mutex_);
      queue_changed_.wait_for(lock, 50ms, [&] { return !events_.empty() || stopping_; });
      batch.swap(events_);
    }
    try {
      for (auto& queued : batch) {
        std::shared_ptr<Run> run;
        {
          std::lock_guard lock(mutex_);
          if (const auto it = runs_.find(queued.local_id); it != runs_.end()) run = it->second;
        }
        auto* event = std::get_if<protocol::JobEvent>(&queued.message);
        if (!run || !event) continue;
        if (protocol::is_terminal(event->body)) {
          run->terminal = event->body;
          run->ended = true;
          finishing.push_back(run);
        } else if (!run->handed_back && !run->lost) {
          try {
            forward(redis, *run, *event);
          } catch (const RedisUnavailable&) {  // progress only: the next event says more
          }
          // An item's output is complete (written and closed by the scheduler) when its item_done
          // comes: its data is flushed now, while the job goes on, not at the end before the rename.
          if (const auto* item = std::get_if<protocol::ItemDoneEvent>(&event->body);
              item && item->output == protocol::OutputPlace::fd && item->item >= 0 &&
              static_cast<std::size_t>(item->item) < run->outputs.size())
            run->outputs[static_cast<std::size_t>(item->item)].sync();
        }
      }
      while (!finishing.empty()) {
        auto run = finishing.front();
        const auto began = Clock::now();
        finish(redis, *run);  // throws while Redis is down: retried on the next turn
        spdlog::debug("cluster: job {}: its end took {} ms to record (fence, publish, finish)", run->job_id,
                      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - began).count());
        forget(run->local_id);
        finishing.erase(finishing.begin());
      }
      const auto now = Clock::now();
      if (now >= next_cancel_poll) {
        next_cancel_poll = now + kCancelPoll;
        poll_cancels(redis);
      }
      if (now >= next_keep_alive) {
        next_keep_alive = now + keep_alive_every;
        keep_alive(redis);
      }
      if (now >= next_heartbeat) {
        next_heartbeat = now + kHeartbeat;
        heartbeat(redis, intake_stopping_ ? "stopping" : "serving");
      }
      if (reported_down) spdlog::info("cluster: Redis at {} is back; reporting again", address_.text());
      reported_down = false;
    } catch (const RedisUnavailable& e) {
      if (!reported_down) spdlog::warn("cluster: {}; progress and results wait for it", e.what());
      reported_down = true;
      if (!stopping_) std::this_thread::sleep_for(200ms);
    } catch (const std::exception& e) {
      spdlog::error("cluster: reporter: {}", e.what());
      if (!stopping_) std::this_thread::sleep_for(200ms);
    }
    if (stopping_) {
      bool idle;
      {
        std::lock_guard lock(queue_mutex_);
        idle = events_.empty();
      }
      if (idle && (finishing.empty() || reported_down)) break;
    }
  }
  try {
    heartbeat(redis, "stopped");
  } catch (const std::exception&) {
  }
}

void ClusterWorker::hand_back() {
  intake_stopping_ = true;
  if (intake_.joinable()) intake_.join();
  std::vector<std::shared_ptr<Run>> running;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [local_id, run] : runs_)
      if (!run->ended && !run->handed_back && !run->lost) running.push_back(run);
  }
  if (running.empty()) return;
  std::optional<RedisSession> redis;
  redis.emplace(address_, credentials_, 2s);
  for (const auto& run : running) {
    try {
      const auto verdict = redis->command({"EVAL", kRequeueScript, "3", names_.job_key(run->job_id),
                                           names_.events_key(run->job_id), names_.stream, run->token, "", "1",
                                           encode_event(run->job_id, protocol::QueuedEvent{1}),
                                           std::to_string(config_.events_maxlen), names_.group, consumer_,
                                           run->entry_id, std::to_string(kHandBackIdleMs)})
                               .str();
      if (verdict == "late") continue;  // it is being finished: let it end
      spdlog::info("cluster: job {} handed back to {} (stopping)", run->job_id, names_.stream);
    } catch (const std::exception& e) {
      spdlog::warn("cluster: job {}: cannot hand it back ({}); another worker takes it after claim_idle", run->job_id,
                   e.what());
    }
    run->handed_back = true;
    try {
      scheduler_.cancel(run->local_id, owner_);
    } catch (const Error&) {
    }
  }
}

void ClusterWorker::stop() {
  if (!started_) return;
  hand_back();
  stopping_ = true;
  queue_changed_.notify_all();
  if (reporter_.joinable()) reporter_.join();
}

}  // namespace heygem::cluster
