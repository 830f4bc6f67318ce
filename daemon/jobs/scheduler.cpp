#include "daemon/jobs/scheduler.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/job_id.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::jobs {

// A job's log: every line goes to the daemon's log with the job id and to the job's own file,
// which is opened at the first line (lines are written outside the scheduler's lock).
class Scheduler::JobLog {
 public:
  JobLog(std::string id, std::filesystem::path file) : id_(std::move(id)), path_(std::move(file)) {}
  void write(spdlog::level::level_enum level, const std::string& line) {
    const system::ScopedLogFields fields({id_, "", ""});  // JOB_ID= in the journal
    spdlog::log(level, "job {}: {}", id_, line);
    if (!opened_) open();
    if (file_) file_->log(level, "{}", line);
  }

 private:
  void open() {
    opened_ = true;
    try {
      auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path_.string(), false);
      file_ = std::make_shared<spdlog::logger>("job " + id_, std::move(sink));
      file_->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
      file_->flush_on(spdlog::level::trace);
    } catch (const spdlog::spdlog_ex& e) {
      spdlog::error("job {}: cannot open its log {}: {}", id_, path_.string(), e.what());
    }
  }

  std::string id_;
  std::filesystem::path path_;
  bool opened_ = false;  // only the drain writes lines, one drain at a time
  std::shared_ptr<spdlog::logger> file_;
};

struct Scheduler::Entry {
  Job job;
  std::vector<std::string> devices;  // where it may run (executor's devices_for)
  std::vector<UniqueFd> outputs;  // per item; invalid where the result stays in the spool
  std::atomic<bool> cancel_requested{false};
  bool requeue_on_cancel = false;  // cancelled by shutdown: back to the queue, not "cancelled"
  struct Watcher {
    std::weak_ptr<EventSink> sink;
    WatchMode mode;
  };
  std::vector<Watcher> watchers;
  // The latest progress of each running item, for status and new watchers.
  std::map<std::size_t, protocol::RunningEvent> last_running;
  // The model the starting run waits for ("" = none): a watcher that attaches during the load (an
  // attached submit watches right after its job started) is told, as the earlier ones were.
  std::string loading_model;
  // One job's items spread over free slots: its first run takes items from `unclaimed` in order;
  // once that run has its models (`spreadable`), an idle slot of any device that has them all
  // starts a run of its own there and takes items too. The last run to end concludes the job.
  std::deque<std::size_t> unclaimed;
  std::size_t runs = 0;                      // runs working on it now
  bool spreadable = false;
  bool run_cancelled = false;                // a run stopped at the cancel
  std::set<std::string> refused_devices;     // a run could not start there (no second try)
  std::shared_ptr<JobLog> log;  // shared with the lines still waiting for the drain
};

// The scheduler's lock over the board; once it is let go, the work the changes queued is done.
class Scheduler::BoardLock {
 public:
  explicit BoardLock(Scheduler& scheduler) : scheduler_(scheduler), lock_(scheduler.mutex_) {}
  ~BoardLock() {
    if (lock_.owns_lock()) lock_.unlock();
    scheduler_.drain();
  }
  BoardLock(const BoardLock&) = delete;
  BoardLock& operator=(const BoardLock&) = delete;
  std::unique_lock<std::mutex>& lock() { return lock_; }

 private:
  Scheduler& scheduler_;
  std::unique_lock<std::mutex> lock_;
};

namespace {

// A record-sized write into the jobs folder: whether space has come back. Called without the lock.
bool state_folder_writable(const std::filesystem::path& jobs_dir) {
  try {
    const auto probe = jobs_dir / ".space-probe";
    write_file_durably(probe, std::string(4096, ' '));
    std::filesystem::remove(probe);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}


protocol::JobState to_protocol(JobState state) {
  switch (state) {
    case JobState::queued: return protocol::JobState::queued;
    case JobState::running: return protocol::JobState::running;
    case JobState::done: return protocol::JobState::done;
    case JobState::failed: return protocol::JobState::failed;
    case JobState::cancelled: return protocol::JobState::cancelled;
  }
  return protocol::JobState::failed;
}

protocol::ItemState to_protocol(ItemState state) {
  switch (state) {
    case ItemState::pending: return protocol::ItemState::pending;
    case ItemState::running: return protocol::ItemState::running;
    case ItemState::done: return protocol::ItemState::done;
    case ItemState::failed: return protocol::ItemState::failed;
    case ItemState::cancelled: return protocol::ItemState::cancelled;
  }
  return protocol::ItemState::failed;
}

protocol::ItemStatus item_status(const ItemResult& item) {
  protocol::ItemStatus out;
  out.name = item.video_name;
  out.output_name = item.output_name;
  out.state = to_protocol(item.state);
  out.frames_done = item.state == ItemState::done ? item.frames : 0;
  out.frames_total = item.state == ItemState::done ? item.frames : 0;
  out.frames_without_face = item.frames_without_face;
  out.frames_gated = item.frames_gated;
  out.fps = item.fps;
  out.wall_s = item.wall_seconds;
  out.avatar_cache = item.avatar_cache;
  out.detect_s = item.detect_seconds;
  out.output_bytes = item.output_bytes;
  out.delivered = item.delivered;
  out.in_spool = item.in_spool;
  out.error = item.error;
  out.device = item.device;
  return out;
}

protocol::OutputPlace output_place(const ItemResult& item) {
  return item.delivered ? protocol::OutputPlace::fd : protocol::OutputPlace::spool;
}

// A stored record's options as far as this version understands them: keys it does not know (a
// record written by a newer heygemd) or cannot read stay in the record and are left out here.
protocol::SubmitOptions shown_options(const nlohmann::json& stored) {
  if (!stored.is_object()) return {};
  nlohmann::json readable = nlohmann::json::object();
  for (const auto& [key, value] : stored.items()) {
    try {
      (void)protocol::submit_options_from_json(nlohmann::json{{key, value}});
      readable[key] = value;
    } catch (const std::exception&) {
    }
  }
  try {
    return protocol::submit_options_from_json(readable);
  } catch (const std::exception&) {
    return {};  // keys that clash (crf with lossless): shown as the defaults
  }
}

void reset_items(Job& job) {
  for (auto& item : job.items) {
    const auto video = item.video_name, output = item.output_name;
    item = ItemResult{};
    item.video_name = video;
    item.output_name = output;
  }
}

}  // namespace

int concurrent_jobs_on(const std::string& device, int max_concurrent_jobs) {
  if (max_concurrent_jobs != kMaxConcurrentJobsAuto) return max_concurrent_jobs;
  return device.rfind("cuda", 0) == 0 ? kGpuDefaultConcurrentJobs : kCpuDefaultConcurrentJobs;
}

std::size_t concurrent_jobs_on(const std::vector<std::string>& devices, int max_concurrent_jobs) {
  std::size_t slots = 0;
  for (const auto& device : devices) slots += static_cast<std::size_t>(concurrent_jobs_on(device, max_concurrent_jobs));
  return slots;
}

Scheduler::Scheduler(const std::filesystem::path& state_dir, SchedulerSettings settings, JobExecutor& executor)
    : state_dir_(state_dir), settings_(settings), executor_(executor), store_(state_dir), spool_(state_dir) {
  if (settings_.max_concurrent_jobs < 1 && settings_.max_concurrent_jobs != kMaxConcurrentJobsAuto)
    throw Error(ErrorCode::invalid_argument, "max_concurrent_jobs must be >= 1 or auto");
}

Scheduler::~Scheduler() { shutdown(std::chrono::milliseconds(0)); }

std::optional<std::string> Scheduler::keep_with_quarantined_record(const QuarantinedRecord& record) {
  const auto name = record.moved_to.filename().string();  // <id>.json.<stamp>
  const auto id = name.substr(0, name.find('.'));
  std::error_code ec;
  if (!is_valid_job_id(id) || !std::filesystem::is_directory(spool_.root() / id, ec)) return std::nullopt;
  // Only the record is damaged: the job's inputs and the results waiting for fetch go beside it.
  auto target = record.moved_to;
  target += ".spool";
  std::filesystem::rename(spool_.job_dir(id), target, ec);
  if (ec) {
    spdlog::error("job store: cannot move {} beside its quarantined record: {}; it stays in the spool",
                  spool_.job_dir(id).string(), ec.message());
    return id;
  }
  spdlog::warn("job store: the files of quarantined job {} are in {}", id, target.string());
  return std::nullopt;
}

RecoveryReport Scheduler::start() {
  RecoveryReport report;
  auto loaded = store_.load_all();
  report.quarantined = loaded.quarantined.size();
  std::set<std::string> kept_in_spool;  // quarantined jobs whose folder could not move
  for (const auto& record : loaded.quarantined)
    if (const auto id = keep_with_quarantined_record(record)) kept_in_spool.insert(*id);
  BoardLock board(*this);  // no client and no worker yet: the recovery's file work may stay under it
  for (auto& job : loaded.jobs) {
    auto entry = std::make_unique<Entry>();
    next_sequence_ = std::max(next_sequence_, job.sequence + 1);
    const bool interrupted = job.state == JobState::running;
    if (interrupted) {
      // It was interrupted (crash or kill): run it again from scratch.
      job.state = JobState::queued;
      job.started_at_ms = 0;
      reset_items(job);
      try {
        store_.save(job);
      } catch (const Error& e) {
        // A full state disk must not stop the start (under systemd: a restart loop); the record
        // on disk still says running, so the next start requeues it again.
        spdlog::error("job {}: cannot persist its requeued record: {}", job.id, e.what());
        storage_problem_ = e.what();
      }
      ++report.requeued;
    }
    if (job.state == JobState::queued) {
      queue_.emplace(job.sequence, job.id);
      ++report.queued;
    } else {
      ++report.finished;
    }
    entry->devices = executor_.devices_for(job);
    entry->outputs.resize(job.items.size());
    entry->job = std::move(job);
    if (interrupted) {
      spool_.reset_outputs(entry->job.id, entry->job.items.size());
      log_line(*entry, spdlog::level::warn, "interrupted while running; requeued from scratch");
    }
    const auto id = entry->job.id;
    entries_.emplace(id, std::move(entry));
  }
  for (const auto& id : spool_.job_ids()) {
    if (entries_.count(id) || kept_in_spool.count(id)) continue;
    spdlog::warn("spool: removing {} (no job record owns it)", spool_.job_dir(id).string());
    spool_.remove_job(id);
    ++report.orphans_removed;
  }
  devices_ = executor_.devices();
  dispatching_ = true;
  last_beat_ = std::chrono::steady_clock::now();
  for (const auto& device : devices_) {
    const int slots = concurrent_jobs_on(device, settings_.max_concurrent_jobs);
    spdlog::info("scheduler: {} runs up to {} job(s) at once", device, slots);
    for (int slot = 0; slot < slots; ++slot) workers_.emplace_back([this, device] { worker_loop(device); });
  }
  return report;
}

void Scheduler::hold(std::string waiting_for) {
  std::lock_guard lock(mutex_);
  held_for_ = std::move(waiting_for);
}

void Scheduler::release() {
  std::lock_guard lock(mutex_);
  held_for_.reset();
  changed_.notify_all();
}

void Scheduler::shutdown(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  dispatching_ = false;
  changed_.notify_all();
  if (!changed_.wait_for(lock, timeout, [&] { return running_ == 0; })) {
    for (auto& [id, entry] : entries_) {
      if (entry->job.state != JobState::running) continue;
      entry->requeue_on_cancel = true;
      entry->cancel_requested = true;
      log_line(*entry, spdlog::level::warn, "shutting down: stopping the run, the job will be requeued");
    }
  }
  changed_.wait(lock, [&] { return running_ == 0; });
  stopping_ = true;
  changed_.notify_all();
  lock.unlock();
  drain();
  for (auto& worker : workers_)
    if (worker.joinable()) worker.join();
  workers_.clear();
}

Job Scheduler::submit(SubmitRequest request) {
  if (request.videos.empty()) throw Error(ErrorCode::invalid_argument, "submit: no video given");
  if (const auto problem = storage_problem()) {
    if (!state_folder_writable(store_.directory()))
      throw Error(ErrorCode::resource, "heygemd cannot store new jobs now (" + *problem +
                                           "); they are refused until its state folder has room again");
    std::lock_guard lock(mutex_);
    storage_problem_.reset();
    spdlog::info("the state folder has room again: new jobs are accepted");
  }
  if (request.outputs.size() != request.videos.size() || request.output_names.size() != request.videos.size())
    throw Error(ErrorCode::internal, "submit: outputs do not match the videos");
  Job job;
  job.id = new_job_id();
  job.owner = request.owner;
  job.audio_name = request.audio.name;
  job.options = request.options.is_null() ? nlohmann::json::object() : request.options;
  if (!job.options.is_object()) throw Error(ErrorCode::invalid_argument, "submit: options must be an object");
  for (std::size_t i = 0; i < request.videos.size(); ++i) {
    ItemResult item;
    item.video_name = request.videos[i].name;
    item.output_name = request.output_names[i];
    job.items.push_back(std::move(item));
  }
  {
    std::lock_guard lock(mutex_);
    refuse_when_queue_full(job.owner);  // before the copy, which may be long
  }
  // Copy the inputs before the job exists anywhere, so a half-copied job is never visible.
  const auto copy_deadline = std::chrono::steady_clock::now() + settings_.input_copy_timeout;
  spool_.create_job_dir(job.id);
  try {
    spool_.copy_in(request.audio.fd.get(), spool_.audio_path(job.id), settings_.max_input_bytes,
                   "audio " + request.audio.name, copy_deadline);
    for (std::size_t i = 0; i < request.videos.size(); ++i)
      spool_.copy_in(request.videos[i].fd.get(), spool_.video_path(job.id, i), settings_.max_input_bytes,
                     "video " + request.videos[i].name, copy_deadline);
    sync_directory(spool_.job_dir(job.id));
  } catch (...) {
    spool_.remove_job(job.id);
    throw;
  }
  auto entry = std::make_unique<Entry>();
  entry->devices = executor_.devices_for(job);
  entry->outputs = std::move(request.outputs);
  {
    std::unique_lock lock(mutex_);
    const bool accepting = dispatching_;
    // Submitted = entered the queue: stamped with the sequence, after the inputs were copied (under
    // load that copy takes seconds, and a clock read before it would disagree with the FIFO order).
    if (accepting) {
      job.submitted_at_ms = now_unix_ms();
      job.sequence = next_sequence_++;
    }
    lock.unlock();
    if (!accepting) {
      spool_.remove_job(job.id);
      throw Error(ErrorCode::resource, "the scheduler is not accepting jobs (shutting down)");
    }
  }
  // The record is durable before the job is visible (its save fsyncs: not under the lock).
  try {
    store_.save(job);
  } catch (...) {
    spool_.remove_job(job.id);
    throw;
  }
  entry->job = job;
  std::exception_ptr refused;
  {
    BoardLock board(*this);
    try {
      refuse_when_queue_full(job.owner);  // again: other submits may have filled it meanwhile
    } catch (const Error&) {
      refused = std::current_exception();
    }
    if (!refused) {
      std::string names;
      for (const auto& item : job.items) names += (names.empty() ? "" : ", ") + item.video_name;
      log_line(*entry, spdlog::level::info, "submitted by uid " + std::to_string(job.owner) + ": audio " +
                                                job.audio_name + ", " + std::to_string(job.items.size()) +
                                                " video(s): " + names + ", options " + job.options.dump());
      entry->log.reset();  // reopened when it runs: a queued job holds no fd for its log
      queue_.emplace(job.sequence, job.id);
      entries_.emplace(job.id, std::move(entry));
      changed_.notify_all();
    }
  }
  if (refused) {
    try {
      store_.remove(job.id);
    } catch (const Error& e) {
      spdlog::error("job {}: cannot remove the record of a refused submit: {}", job.id, e.what());
    }
    spool_.remove_job(job.id);
    std::rethrow_exception(refused);
  }
  return job;
}

void Scheduler::refuse_when_queue_full(uid_t owner) const {
  if (queue_.size() >= settings_.max_queued_jobs)
    throw Error(ErrorCode::resource, "the queue is full: " + std::to_string(queue_.size()) +
                                         " jobs wait (limits.max_queued_jobs); try again later");
  std::size_t owned = 0;
  for (const auto& [sequence, id] : queue_)
    if (entries_.at(id)->job.owner == owner) ++owned;
  if (owned >= settings_.max_queued_jobs_per_uid)
    throw Error(ErrorCode::resource, "uid " + std::to_string(owner) + " has " + std::to_string(owned) +
                                         " jobs waiting (limits.max_queued_jobs_per_uid); try again when some have run");
}

std::optional<std::size_t> Scheduler::position(const Entry& entry) const {
  if (entry.job.state != JobState::queued) return std::nullopt;
  std::size_t ahead = 0;
  for (const auto& [sequence, id] : queue_) {
    if (id == entry.job.id) return ahead + 1;
    ++ahead;
  }
  return std::nullopt;
}

protocol::JobStatus Scheduler::summary(const Entry& entry) const {
  const auto& job = entry.job;
  protocol::JobStatus out;
  out.job_id = job.id;
  out.uid = job.owner;
  out.state = to_protocol(job.state);
  out.position = static_cast<int>(position(entry).value_or(0));
  out.audio_name = job.audio_name;
  out.model = job.model;
  out.submitted_at_ms = job.submitted_at_ms;
  out.started_at_ms = job.started_at_ms;
  out.finished_at_ms = job.finished_at_ms;
  out.attempts = job.attempts;
  out.error = job.error;
  out.options = shown_options(job.options);
  for (const auto& item : job.items) out.items.push_back(item_status(item));
  for (const auto& [index, progress] : entry.last_running) {
    if (job.state != JobState::running) break;
    auto& item = out.items.at(index);
    item.stage = progress.stage;
    item.frames_done = progress.frames_done;
    item.frames_total = progress.frames_total;
    item.fps = progress.fps;
    item.eta_s = progress.eta_s;
  }
  return out;
}

protocol::EventBody Scheduler::terminal_event(const Entry& entry) const {
  const auto& job = entry.job;
  if (job.state == JobState::cancelled) return protocol::CancelledEvent{};
  if (job.state == JobState::failed) return protocol::FailedEvent{job.error};
  protocol::DoneEvent done;
  for (const auto& item : job.items) {
    done.outputs.push_back(output_place(item));
    done.frames += item.frames;
    done.frames_without_face += item.frames_without_face;
    done.wall_s += item.wall_seconds;
  }
  done.fps = done.wall_s > 0 ? static_cast<double>(done.frames) / done.wall_s : 0.0;
  return done;
}

const Scheduler::Entry& Scheduler::visible_entry(const std::string& id, uid_t uid) const {
  const auto it = entries_.find(id);
  // Another uid's job answers exactly like a missing one: its existence is not theirs to learn.
  if (it == entries_.end() || (uid != 0 && it->second->job.owner != uid))
    throw Error(ErrorCode::not_found, "no job " + id);
  return *it->second;
}

Scheduler::Entry& Scheduler::visible_entry(const std::string& id, uid_t uid) {
  return const_cast<Entry&>(std::as_const(*this).visible_entry(id, uid));
}

std::vector<protocol::JobStatus> Scheduler::list(uid_t uid, bool include_finished) const {
  std::lock_guard lock(mutex_);
  std::vector<const Entry*> visible;
  for (const auto& [id, entry] : entries_) {
    if (uid != 0 && entry->job.owner != uid) continue;
    if (!include_finished && is_finished(entry->job.state)) continue;
    visible.push_back(entry.get());
  }
  std::sort(visible.begin(), visible.end(),
            [](const Entry* a, const Entry* b) { return a->job.sequence < b->job.sequence; });
  std::vector<protocol::JobStatus> out;
  for (const auto* entry : visible) out.push_back(shown_summary(*entry));
  return out;
}

protocol::JobStatus Scheduler::status(const std::string& id, uid_t uid) const {
  std::lock_guard lock(mutex_);
  return shown_summary(visible_entry(id, uid));
}

protocol::JobStatus Scheduler::shown_summary(const Entry& entry) const {
  try {
    return summary(entry);
  } catch (const std::exception& e) {
    // One record that cannot be shown must not fail a listing of all the others.
    protocol::JobStatus out;
    out.job_id = entry.job.id;
    out.uid = entry.job.owner;
    out.state = protocol::JobState::failed;
    out.error = std::string("this job's record is damaged: ") + e.what();
    return out;
  }
}

protocol::JobStatus Scheduler::cancel(const std::string& id, uid_t uid) {
  BoardLock board(*this);
  auto& entry = visible_entry(id, uid);
  switch (entry.job.state) {
    case JobState::queued:
      queue_.erase(entry.job.sequence);
      entry.cancel_requested = true;
      log_line(entry, spdlog::level::info, "cancelled while queued (by uid " + std::to_string(uid) + ")");
      finish_entry(entry, true, false);
      broadcast_positions();
      break;
    case JobState::running:
      entry.cancel_requested = true;
      log_line(entry, spdlog::level::info, "cancel requested while running (by uid " + std::to_string(uid) + ")");
      break;
    default:
      throw Error(ErrorCode::invalid_argument, "job " + id + " has already finished (" + to_string(entry.job.state) + ")");
  }
  return summary(entry);
}

bool Scheduler::watch(const std::string& id, uid_t uid, std::weak_ptr<EventSink> sink, WatchMode mode) {
  BoardLock board(*this);  // what is known now reaches the sink before this returns, in order
  auto& entry = visible_entry(id, uid);
  if (sink.expired()) return false;
  const auto tell = [&](protocol::Response message) {
    defer([sink, message = std::move(message)] {
      if (const auto target = sink.lock()) target->deliver(message);
    });
  };
  const bool finished = is_finished(entry.job.state);
  if (mode == WatchMode::stream) {
    tell(summary(entry));
    if (const auto p = position(entry)) tell(protocol::JobEvent{id, protocol::QueuedEvent{static_cast<int>(*p)}});
    if (!entry.loading_model.empty() && !finished)
      tell(protocol::JobEvent{id, protocol::LoadingModelEvent{entry.loading_model}});
    else if (held_for_ && entry.job.state == JobState::queued)
      tell(protocol::JobEvent{id, protocol::LoadingModelEvent{*held_for_}});
    if (!finished)
      for (const auto& [index, progress] : entry.last_running) tell(protocol::JobEvent{id, progress});
  }
  if (finished) {
    tell(protocol::JobEvent{id, terminal_event(entry)});
    return false;
  }
  entry.watchers.push_back({std::move(sink), mode});
  return true;
}

UniqueFd Scheduler::open_output(const std::string& id, uid_t uid, std::size_t item) const {
  std::unique_lock lock(mutex_);
  const auto& entry = visible_entry(id, uid);
  if (item >= entry.job.items.size())
    throw Error(ErrorCode::invalid_argument, "job " + id + " has " + std::to_string(entry.job.items.size()) +
                                                 " item(s); there is no item " + std::to_string(item));
  const auto& result = entry.job.items[item];
  if (!result.in_spool) {
    if (result.delivered)
      throw Error(ErrorCode::not_found, "item " + std::to_string(item) + " of job " + id +
                                            " was written to the output the submitter passed");
    throw Error(ErrorCode::not_found, "item " + std::to_string(item) + " of job " + id + " has no result (" +
                                          to_string(result.state) + ")");
  }
  const auto path = spool_.output_path(id, item);
  lock.unlock();
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT)  // retention removed the job meanwhile
    throw Error(ErrorCode::not_found, "no job " + id);
  if (!fd.valid()) {
    spdlog::error("job {}: cannot open {}: {}", id, path.string(), std::strerror(errno));
    throw Error(ErrorCode::internal, "cannot open the spooled result of item " + std::to_string(item) + " of job " + id);
  }
  return fd;
}

std::string Scheduler::read_log(const std::string& id, uid_t uid) const {
  std::filesystem::path path;
  {
    std::lock_guard lock(mutex_);
    visible_entry(id, uid);
    path = spool_.log_path(id);
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Scheduler::Counts Scheduler::counts() const {
  std::lock_guard lock(mutex_);
  return {queue_.size(), running_, concurrent_jobs_on(devices_, settings_.max_concurrent_jobs)};
}

bool Scheduler::wait_for_free_slot(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const auto free = [&] {
    if (!queue_.empty() || busy_slots_ >= concurrent_jobs_on(devices_, settings_.max_concurrent_jobs)) return false;
    // A free slot that a running job's waiting items are about to take is not free.
    for (const auto& device : devices_)
      if (running_on_[device] < static_cast<std::size_t>(concurrent_jobs_on(device, settings_.max_concurrent_jobs)) &&
          spread_for(device))
        return false;
    return true;
  };
  // changed_ is notified when a run ends; a queue emptied otherwise (a queued job cancelled, or
  // started beside a slot that stays free) is not, and is seen at the timeout.
  return changed_.wait_for(lock, timeout, [&] { return stopping_ || free(); }) && !stopping_;
}

std::chrono::steady_clock::time_point Scheduler::last_beat() const {
  std::lock_guard lock(mutex_);
  return last_beat_;
}

void Scheduler::emit(Entry& entry, protocol::EventBody body) {
  last_beat_ = std::chrono::steady_clock::now();
  const bool terminal = protocol::is_terminal(body);
  const protocol::Response message = protocol::JobEvent{entry.job.id, std::move(body)};
  auto& watchers = entry.watchers;
  watchers.erase(std::remove_if(watchers.begin(), watchers.end(),
                                [&](const Entry::Watcher& w) {
                                  const auto sink = w.sink.lock();
                                  if (!sink) return true;
                                  if (terminal || w.mode == WatchMode::stream)
                                    defer([sink = w.sink, message] {
                                      if (const auto target = sink.lock()) target->deliver(message);
                                    });
                                  return false;
                                }),
                 watchers.end());
}

void Scheduler::broadcast_positions() {
  int position = 0;
  for (const auto& [sequence, id] : queue_) emit(*entries_.at(id), protocol::QueuedEvent{++position});
}

void Scheduler::persist(const Entry& entry) {
  defer([this, job = entry.job] { save_record(job); });
}

void Scheduler::save_record(const Job& job) {
  std::optional<std::string> problem;
  try {
    store_.save(job);
  } catch (const Error& e) {
    // The job goes on in memory; the next save may succeed (disk full is often temporary).
    spdlog::error("job {}: cannot persist its record: {}", job.id, e.what());
    problem = e.what();
  }
  std::lock_guard lock(mutex_);
  if (!problem && storage_problem_) spdlog::info("the state folder takes records again");
  storage_problem_ = problem;
}

void Scheduler::log_line(Entry& entry, spdlog::level::level_enum level, std::string line) {
  if (!entry.log) entry.log = std::make_shared<JobLog>(entry.job.id, spool_.log_path(entry.job.id));
  defer([log = entry.log, level, line = std::move(line)] { log->write(level, line); });
}

void Scheduler::defer(std::function<void()> work) { deferred_.push_back(std::move(work)); }

void Scheduler::drain() noexcept {
  const std::lock_guard draining(drain_mutex_);
  std::vector<std::function<void()>> work;
  {
    const std::lock_guard lock(mutex_);
    work.swap(deferred_);
  }
  for (auto& step : work) {
    try {
      step();
    } catch (const std::exception& e) {
      spdlog::error("scheduler: {}", e.what());
    } catch (...) {
      spdlog::error("scheduler: unknown error outside the lock");
    }
  }
}

std::optional<std::string> Scheduler::storage_problem() const {
  std::lock_guard lock(mutex_);
  return storage_problem_;
}


std::vector<std::string> Scheduler::served_devices(const Entry& entry) const {
  std::vector<std::string> served;
  for (const auto& device : entry.devices)
    if (std::find(devices_.begin(), devices_.end(), device) != devices_.end()) served.push_back(device);
  return served;
}

bool Scheduler::lighter_elsewhere(const std::vector<std::string>& candidates, const std::string& device) {
  const auto load = running_on_[device];
  return std::any_of(candidates.begin(), candidates.end(), [&](const std::string& other) {
    const auto other_load = running_on_[other];
    return other_load < load &&
           other_load < static_cast<std::size_t>(concurrent_jobs_on(other, settings_.max_concurrent_jobs));
  });
}

Scheduler::Entry* Scheduler::next_for(const std::string& device) {
  for (const auto& [sequence, id] : queue_) {
    auto& entry = *entries_.at(id);
    auto candidates = served_devices(entry);
    if (candidates.empty()) candidates = devices_;  // its devices have no slots (config changed): any
    if (std::find(candidates.begin(), candidates.end(), device) == candidates.end()) continue;
    // The least-loaded device takes it: this one leaves it to a candidate with fewer runs and a free
    // slot (woken by the same notify); a later job may still fit here (FIFO per device).
    if (!lighter_elsewhere(candidates, device)) return &entry;
  }
  return nullptr;
}

Scheduler::Entry* Scheduler::spread_for(const std::string& device) {
  Entry* oldest = nullptr;
  for (auto& [id, owned] : entries_) {
    auto& entry = *owned;
    if (entry.job.state != JobState::running || !entry.spreadable || entry.unclaimed.empty() ||
        entry.cancel_requested || entry.refused_devices.count(device) > 0)
      continue;
    if (oldest && oldest->job.sequence < entry.job.sequence) continue;
    auto candidates = served_devices(entry);
    // a device that refused the job is no lighter place for its items
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const std::string& d) { return entry.refused_devices.count(d) > 0; }),
                     candidates.end());
    if (std::find(candidates.begin(), candidates.end(), device) == candidates.end()) continue;
    if (!lighter_elsewhere(candidates, device)) oldest = &entry;
  }
  return oldest;
}

void Scheduler::worker_loop(std::string device) {
  std::unique_lock lock(mutex_);
  for (;;) {
    Entry* entry = nullptr;
    bool first_run = false;
    changed_.wait_for(lock, std::chrono::seconds(1), [&] {
      if (stopping_ || !dispatching_ || held_for_) return stopping_;
      // The oldest work first: a running job's waiting items, or the next queued job.
      Entry* queued = next_for(device);
      entry = spread_for(device);
      first_run = queued && (!entry || queued->job.sequence < entry->job.sequence);
      if (first_run) entry = queued;
      return entry != nullptr;
    });
    last_beat_ = std::chrono::steady_clock::now();
    if (stopping_) return;
    if (!entry || !dispatching_ || held_for_) continue;
    if (first_run) {
      queue_.erase(entry->job.sequence);
      entry->job.state = JobState::running;
      entry->job.started_at_ms = now_unix_ms();
      entry->job.attempts += 1;
      entry->cancel_requested = false;
      entry->run_cancelled = false;
      entry->spreadable = false;
      entry->refused_devices.clear();
      entry->unclaimed.clear();
      for (std::size_t item = 0; item < entry->job.items.size(); ++item)
        if (entry->job.items[item].state == ItemState::pending) entry->unclaimed.push_back(item);
      ++running_;
      persist(*entry);
      log_line(*entry, spdlog::level::info, "started on " + device + " (attempt " +
                                                std::to_string(entry->job.attempts) + ")");
      broadcast_positions();
    } else {
      log_line(*entry, spdlog::level::info, "also runs items on " + device + " (a free slot)");
    }
    ++entry->runs;
    ++busy_slots_;
    ++running_on_[device];
    lock.unlock();
    drain();
    run_entry(*entry, device, first_run);  // the entry may be gone once this returns
    lock.lock();
    --busy_slots_;
    --running_on_[device];
    changed_.notify_all();  // a job left for a lighter device may fit here now
  }
}

void Scheduler::run_entry(Entry& entry, const std::string& device, bool first_run) {
  Job snapshot;
  {
    std::lock_guard lock(mutex_);
    snapshot = entry.job;
  }
  // The item this run works on (under mutex_), for its progress events.
  const auto current = std::make_shared<std::size_t>(0);
  RunControl control;
  control.cancelled = [&entry] { return entry.cancel_requested.load(); };
  control.loading_model = [this, &entry, first_run, device](const std::string& model) {
    BoardLock board(*this);
    if (!first_run) {  // the job runs meanwhile: its watchers keep seeing the items' progress
      log_line(entry, spdlog::level::info, "loading model " + model + " on " + device + " for more of its items");
      return;
    }
    log_line(entry, spdlog::level::info, "loading model " + model);
    entry.loading_model = model;
    emit(entry, protocol::LoadingModelEvent{model});
  };
  control.progress = [this, &entry, current](const ItemProgressEvent& progress) {
    BoardLock board(*this);
    const auto item = *current;
    protocol::RunningEvent running{static_cast<int>(item), static_cast<int>(entry.job.items.size()), progress.stage,
                                   progress.frames_done, progress.frames_total, progress.fps, progress.eta_seconds};
    const auto last = entry.last_running.find(item);
    if (last == entry.last_running.end() || last->second.stage != progress.stage)
      log_line(entry, spdlog::level::debug, "item " + std::to_string(item + 1) + ": stage " + progress.stage);
    entry.last_running[item] = running;
    emit(entry, std::move(running));
  };
  control.log = [this, &entry](const std::string& line) {
    BoardLock board(*this);
    log_line(entry, spdlog::level::info, line);
  };
  std::unique_ptr<JobRun> run;
  try {
    run = executor_.start(snapshot, spool_, control, device);
  } catch (const std::exception& e) {
    BoardLock board(*this);
    if (first_run) entry.loading_model.clear();
    if (entry.cancel_requested) {
      // a cancel that came after every item was taken leaves the job to the runs that took them
      if (first_run || !entry.unclaimed.empty()) entry.run_cancelled = true;
    } else if (first_run) {
      // Nothing could run (no model, ...): every item fails with the cause.
      entry.job.error = e.what();
      entry.unclaimed.clear();
      for (auto& item : entry.job.items)
        if (item.state == ItemState::pending || item.state == ItemState::running) {
          item.state = ItemState::failed;
          item.error = e.what();
        }
      log_line(entry, spdlog::level::err, std::string("failed: ") + e.what());
    } else {
      entry.refused_devices.insert(device);
      log_line(entry, spdlog::level::warn, "cannot run items on " + device + " too: " + e.what() +
                                               " (its other runs go on)");
    }
  }
  if (run) {
    {
      std::lock_guard lock(mutex_);
      if (first_run) {
        entry.loading_model.clear();  // every model the run needs is resident now
        entry.job.model = run->model_name();
      }
    }
    for (;;) {
      std::size_t item = 0;
      {
        std::lock_guard lock(mutex_);
        // Every item taken: done here, also when a cancel comes now (the job's items are all done or
        // running elsewhere, and those runs see it).
        if (entry.unclaimed.empty()) break;
        if (entry.cancel_requested) {
          entry.run_cancelled = true;
          break;
        }
        item = entry.unclaimed.front();
        entry.unclaimed.pop_front();
        *current = item;
        if (entry.unclaimed.empty()) changed_.notify_all();  // wait_for_free_slot: no work waits here now
        if (first_run && !entry.spreadable) {
          entry.spreadable = true;  // its models are there: free slots may take its other items
          if (!entry.unclaimed.empty()) changed_.notify_all();
        }
      }
      try {
        run_item(entry, *run, item, device);
      } catch (const std::exception& e) {  // run_item fails its item on an Error; anything else fails here
        const auto* error = dynamic_cast<const Error*>(&e);
        if (error && error->code() == ErrorCode::cancelled) {
          std::lock_guard lock(mutex_);
          entry.run_cancelled = true;
          break;
        }
        BoardLock board(*this);
        entry.last_running.erase(item);
        fail_item(entry, item, e.what());
      }
    }
    run.reset();  // its model leases go before the job can be seen concluded
  }
  end_run(entry);
}

void Scheduler::end_run(Entry& entry) {
  // The end of a job is on disk before anyone can see it (a client that saw "done" and then saw
  // heygemd crash finds it done after the restart): the concluded record is saved first.
  std::optional<Job> concluded;
  bool cancelled = false, requeue = false;
  {
    BoardLock board(*this);
    if (--entry.runs > 0) return;  // its other runs go on; the last one concludes
    entry.spreadable = false;
    cancelled = entry.run_cancelled;
    requeue = cancelled && entry.requeue_on_cancel;
    if (!requeue) {
      concluded = entry.job;
      conclude(*concluded, cancelled);
      defer([this, saved = *concluded] { save_record(saved); });
    }
  }
  BoardLock board(*this);
  if (concluded) entry.job = std::move(*concluded);  // nothing else changes a job whose runs ended
  finish_entry(entry, cancelled, requeue);
  --running_;
  changed_.notify_all();
}

ItemOutcome Scheduler::run_item(Entry& entry, JobRun& run, std::size_t item, const std::string& device) {
  const auto& id = entry.job.id;
  const auto total = entry.job.items.size();
  const auto output = spool_.output_path(id, item);
  {
    BoardLock board(*this);
    entry.job.items[item].state = ItemState::running;
    entry.job.items[item].device = device;
    log_line(entry, spdlog::level::info, "item " + std::to_string(item + 1) + "/" + std::to_string(total) + ": " +
                                             entry.job.items[item].video_name + " (on " + device + ")");
    protocol::RunningEvent running{static_cast<int>(item), static_cast<int>(total), "starting", 0, 0, 0, 0};
    entry.last_running[item] = running;
    emit(entry, std::move(running));
  }
  ItemOutcome outcome;
  try {
    outcome = run.run_item(item, output);
  } catch (const Error& e) {
    BoardLock board(*this);
    entry.last_running.erase(item);
    auto& result = entry.job.items[item];
    if (e.code() == ErrorCode::cancelled) {
      result.state = ItemState::cancelled;
      throw;
    }
    fail_item(entry, item, e.what());
    return outcome;
  }
  BoardLock board(*this);
  entry.last_running.erase(item);
  auto& result = entry.job.items[item];
  result.frames = outcome.frames;
  result.frames_without_face = outcome.frames_without_face;
  result.wall_seconds = outcome.wall_seconds;
  result.fps = outcome.fps;
  result.output_fps = outcome.output_fps;
  result.avatar_cache = outcome.avatar_cache;
  result.detect_seconds = outcome.detect_seconds;
  result.frames_gated = outcome.frames_gated;
  std::error_code ec;
  result.output_bytes = std::filesystem::file_size(output, ec);
  try {
    deliver_output(entry, item, board.lock());
  } catch (const Error& e) {
    // The submitter asked for this file and did not get it: the item fails with the cause (a full
    // disk, say), although the render itself is kept for fetch.
    fail_item(entry, item, std::string(e.what()) + "; the result is kept in the spool: heygemctl fetch " + id);
    return outcome;
  }
  result.state = ItemState::done;
  log_line(entry, spdlog::level::info,
                             "item " + std::to_string(item + 1) + " done: " + std::to_string(result.frames) +
                                 " frames in " + std::to_string(result.wall_seconds) + " s (" +
                                 std::to_string(result.fps) + " fps), " + std::to_string(result.frames_without_face) +
                                 " without a face" + (result.delivered ? ", written to the client's output" : ", kept for fetch"));
  emit(entry, protocol::ItemDoneEvent{static_cast<int>(item), output_place(result), result.frames,
                                      result.frames_without_face, result.wall_seconds, result.fps,
                                      result.avatar_cache, result.detect_seconds,
                                      result.delivered ? result.output_name : std::string(), result.output_fps,
                                      result.frames_gated});
  persist(entry);
  return outcome;
}

void Scheduler::deliver_output(Entry& entry, std::size_t item, std::unique_lock<std::mutex>& lock) {
  const auto source = spool_.output_path(entry.job.id, item);
  // Only this worker touches a running entry's output fds.
  UniqueFd fd = std::move(entry.outputs[item]);
  if (!fd.valid()) {  // no output was passed, or it was lost with a daemon restart
    entry.job.items[item].in_spool = true;
    return;
  }
  const auto what = "output " + entry.job.items[item].output_name;
  // The client's fd may be slow (a slow disk, a FUSE file): never write under the lock, which every
  // status, list and watch of every client needs.
  lock.unlock();
  std::exception_ptr failure;
  try {
    deliver_file(source, fd.get(), what);
  } catch (const Error&) {
    // No partial file for the submitter: what was written goes (the fd is all we have of it).
    [[maybe_unused]] const int ignored = ::ftruncate(fd.get(), 0);
    failure = std::current_exception();
  }
  fd.reset();
  if (!failure) {
    std::error_code ec;
    std::filesystem::remove(source, ec);
  }
  lock.lock();
  auto& result = entry.job.items[item];
  if (failure) {
    result.in_spool = true;
    std::rethrow_exception(failure);
  }
  result.delivered = true;
}

void Scheduler::fail_item(Entry& entry, std::size_t item, const std::string& cause) {
  auto& result = entry.job.items[item];
  result.state = ItemState::failed;
  result.error = cause;
  if (entry.job.error.empty()) entry.job.error = "item " + std::to_string(item + 1) + ": " + cause;
  log_line(entry, spdlog::level::err, "item " + std::to_string(item + 1) + " failed: " + cause);
  persist(entry);
}

void Scheduler::conclude(Job& job, bool cancelled) {
  job.finished_at_ms = now_unix_ms();
  for (auto& item : job.items)
    if (item.state == ItemState::pending || item.state == ItemState::running)
      item.state = cancelled ? ItemState::cancelled : ItemState::failed;
  const bool any_failed =
      std::any_of(job.items.begin(), job.items.end(), [](const ItemResult& i) { return i.state == ItemState::failed; });
  job.state = cancelled ? JobState::cancelled : any_failed ? JobState::failed : JobState::done;
  if (job.state == JobState::failed && job.error.empty()) job.error = "failed";
}

void Scheduler::finish_entry(Entry& entry, bool cancelled, bool requeue) {
  auto& job = entry.job;
  entry.last_running.clear();
  if (requeue) {
    job.state = JobState::queued;
    job.started_at_ms = 0;
    reset_items(job);
    defer([this, id = job.id, items = job.items.size()] { spool_.reset_outputs(id, items); });
    queue_.emplace(job.sequence, job.id);
    persist(entry);
    log_line(entry, spdlog::level::info, "requeued");
    return;
  }
  if (!is_finished(job.state)) {
    conclude(job, cancelled);
    persist(entry);
  }
  entry.outputs.clear();  // closes the client's output fds
  defer([scratch = spool_.scratch_dir(job.id)] {
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  });
  log_line(entry, job.state == JobState::done ? spdlog::level::info : spdlog::level::warn,
                             to_string(job.state) + (job.error.empty() ? "" : ": " + job.error));
  emit(entry, terminal_event(entry));
  entry.watchers.clear();
  entry.log.reset();
}

bool Scheduler::take_finished(const std::string& id) {
  const auto it = entries_.find(id);
  if (it == entries_.end() || !is_finished(it->second->job.state)) return false;
  entries_.erase(it);
  return true;
}

void Scheduler::remove_files(const std::string& id) {
  try {
    store_.remove(id);
  } catch (const Error& e) {
    spdlog::error("retention: job {}: {}", id, e.what());
  }
  spool_.remove_job(id);
}

CleanupReport Scheduler::cleanup() {
  CleanupReport report;
  const auto now = now_unix_ms();
  std::vector<std::pair<std::int64_t, std::string>> finished;  // (finished_at, id), oldest first
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, entry] : entries_)
      if (is_finished(entry->job.state)) finished.emplace_back(entry->job.finished_at_ms, id);
  }
  std::sort(finished.begin(), finished.end());
  // Off the board under the lock, then the files outside it (a finished job changes no more).
  const auto take = [this](const std::string& id) {
    std::lock_guard lock(mutex_);
    return take_finished(id);
  };
  std::vector<std::string> kept;
  for (const auto& [finished_at, id] : finished) {
    if (now - finished_at > settings_.retention_max_age.count()) {
      if (!take(id)) continue;
      spdlog::info("retention: removing job {} (finished {} s ago)", id, (now - finished_at) / 1000);
      remove_files(id);
      ++report.removed_jobs;
    } else {
      kept.push_back(id);
    }
  }
  std::uint64_t total = 0;
  for (const auto& id : spool_.job_ids()) total += spool_.job_bytes(id);
  for (const auto& id : kept) {
    if (total <= settings_.retention_max_bytes) break;
    const auto bytes = spool_.job_bytes(id);
    if (!take(id)) continue;
    spdlog::info("retention: removing job {} ({} bytes; the spool holds {} > {} bytes)", id, bytes, total,
                 settings_.retention_max_bytes);
    remove_files(id);
    total -= std::min(total, bytes);
    ++report.removed_jobs;
  }
  report.spool_bytes = total;
  return report;
}

}  // namespace heygem::jobs
