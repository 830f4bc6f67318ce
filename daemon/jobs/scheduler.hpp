#pragma once
// The scheduler: the shared, guarded state between the socket loop and the worker threads (pueue
// style). FIFO per device with `max_concurrent_jobs` slots each; jobs are one audio x N videos.
// A job starts on one slot; a free slot of any device that has a running job's models takes that
// job's waiting items too, so one job's items spread over free devices. Work goes in submission
// order: a slot takes the oldest job's waiting items before it starts a later job. Watchers get
// the current state first, then every event until the end.
//
// The lock guards an in-memory job board only. What a change must write (the job's record, its
// log lines, its watchers' messages) is queued under the lock and done after it, in the order the
// changes were made, by whichever thread made them ("the drain"); output delivery and spool file
// removal run outside the lock too. So a slow disk or a client's stuck output never holds up
// another client's status, list or watch, nor the watchdog's beat.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/common.h>

#include "common/protocol.hpp"
#include "daemon/jobs/executor.hpp"
#include "daemon/jobs/job.hpp"
#include "common/unique_fd.hpp"
#include "daemon/jobs/spool.hpp"
#include "daemon/jobs/store.hpp"

namespace heygem::jobs {

// Receives a job's snapshot and events (protocol::JobStatus, protocol::JobEvent). deliver() is
// called outside the scheduler's lock, one message at a time, in event order: it must not block
// (post the message to a queue), since the record saves and other watchers' messages wait for it.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void deliver(const protocol::Response& message) = 0;
};

enum class WatchMode {
  stream,         // the current snapshot, then every event up to the terminal one (watch)
  terminal_only,  // only the terminal event (wait)
};

struct SubmitInput {
  std::string name;  // the client's display name (logged, shown; never opened)
  UniqueFd fd;        // open for reading
};

struct SubmitRequest {
  uid_t owner = 0;
  SubmitInput audio;
  std::vector<SubmitInput> videos;
  std::vector<std::string> output_names;  // per video, "" where the client gave no fd
  std::vector<UniqueFd> outputs;           // per video; invalid where none (keep in the spool)
  nlohmann::json options = nlohmann::json::object();  // already validated item options
};

// scheduler.max_concurrent_jobs: auto picks per device: one job on a CPU replica (a job already
// keeps every intra-op thread busy), four on a GPU (the HunyuanVideo-Foley service's cap per card;
// to be measured on the H100: bench/results).
inline constexpr int kMaxConcurrentJobsAuto = 0;
inline constexpr int kCpuDefaultConcurrentJobs = 1;
inline constexpr int kGpuDefaultConcurrentJobs = 4;
// The job slots of one device ("cpu", "cpu:1", "cuda:0") for a max_concurrent_jobs setting.
int concurrent_jobs_on(const std::string& device, int max_concurrent_jobs);
// The job slots of all these devices together.
std::size_t concurrent_jobs_on(const std::vector<std::string>& devices, int max_concurrent_jobs);

struct SchedulerSettings {
  int max_concurrent_jobs = 1;  // per device; kMaxConcurrentJobsAuto = by device type
  std::uint64_t max_input_bytes = 4ULL << 30;
  std::chrono::milliseconds retention_max_age{7LL * 24 * 3600 * 1000};
  std::uint64_t retention_max_bytes = 20ULL << 30;
  std::chrono::milliseconds input_copy_timeout{600'000};  // all of one job's inputs
  std::size_t max_queued_jobs = 1024;                     // all uids
  std::size_t max_queued_jobs_per_uid = 128;
};

struct RecoveryReport {
  std::size_t queued = 0, requeued = 0, finished = 0, quarantined = 0, orphans_removed = 0;
};

struct CleanupReport {
  std::size_t removed_jobs = 0;
  std::uint64_t spool_bytes = 0;  // after cleaning
};

class Scheduler {
 public:
  Scheduler(const std::filesystem::path& state_dir, SchedulerSettings settings, JobExecutor& executor);
  ~Scheduler();  // shutdown(0) if still running
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Loads the store (running jobs are requeued from scratch, queued ones keep their order,
  // corrupt records are quarantined), removes spool folders no record owns, starts the workers.
  RecoveryReport start();
  // Why the state folder cannot take job records now (a full disk, say), or nullopt. While set,
  // submits are refused; each submit first checks whether space has come back.
  std::optional<std::string> storage_problem() const;

  // While held, jobs are accepted and queued but none starts; watchers of a queued job hear what it
  // waits for (a LoadingModelEvent naming `waiting_for`, e.g. the models heygemd loads at start).
  void hold(std::string waiting_for);
  void release();
  // Stops dispatching; running jobs get `timeout` to finish, then are cancelled and requeued.
  // Everything is persisted when it returns.
  void shutdown(std::chrono::milliseconds timeout);

  // Copies the inputs into the spool and queues the job. Throws heygem::Error naming the cause.
  Job submit(SubmitRequest request);
  // Jobs `uid` may see (root sees all): unfinished ones, or all with `include_finished`.
  std::vector<protocol::JobStatus> list(uid_t uid, bool include_finished) const;
  // Throws Error(not_found) for unknown ids and for other uids' jobs alike.
  protocol::JobStatus status(const std::string& id, uid_t uid) const;
  // Queued: cancelled at once. Running: the pipeline stops at its next check. Finished: error.
  protocol::JobStatus cancel(const std::string& id, uid_t uid);
  // Sends what `mode` asks for to `sink`: at once what is known now (for a finished job, its
  // terminal event), later the rest. Returns false when the job had already finished (nothing
  // more will come).
  bool watch(const std::string& id, uid_t uid, std::weak_ptr<EventSink> sink, WatchMode mode = WatchMode::stream);
  // The finished MP4 of item `item` from the spool, opened for reading.
  UniqueFd open_output(const std::string& id, uid_t uid, std::size_t item) const;
  std::string read_log(const std::string& id, uid_t uid) const;
  // Removes finished jobs past retention_max_age, then the oldest finished ones while the spool
  // exceeds retention_max_bytes.
  CleanupReport cleanup();

  struct Counts {
    std::size_t queued = 0, running = 0;
    std::size_t slots = 0;  // the job slots of every device (0 before start)
  };
  Counts counts() const;
  // Waits until a job submitted now would start at once (nothing queued, fewer running than the
  // slots) or `timeout` passes; true when so. Woken when a run ends, so a caller that feeds the
  // scheduler from elsewhere (the cluster worker's intake) takes its next job without polling.
  bool wait_for_free_slot(std::chrono::milliseconds timeout);
  // Steady-clock time of the last worker heartbeat (workers beat while idle and between events),
  // so a watchdog can tell a stuck scheduler from a busy one.
  std::chrono::steady_clock::time_point last_beat() const;

 private:
  struct Entry;
  class JobLog;

  void worker_loop(std::string device);
  // mutex_ held: the devices of `entry`'s placement that have slots here.
  std::vector<std::string> served_devices(const Entry& entry) const;
  // mutex_ held: whether a device among `candidates` runs less than `device` and has a free slot.
  bool lighter_elsewhere(const std::vector<std::string>& candidates, const std::string& device);
  Entry* next_for(const std::string& device);    // mutex_ held: the queued job this slot starts
  Entry* spread_for(const std::string& device);  // mutex_ held: the running job this slot helps
  // One run of `entry` on `device` (its first, or one taking items beside it); the last to end
  // concludes the job (end_run).
  void run_entry(Entry& entry, const std::string& device, bool first_run);
  void end_run(Entry& entry);
  void finish_entry(Entry& entry, bool cancelled, bool requeue);
  static void conclude(Job& job, bool cancelled);  // the terminal state of a run that ended
  ItemOutcome run_item(Entry& entry, JobRun& run, std::size_t item, const std::string& device);
  // Writes the item's result into the submitter's output fd (or keeps it for fetch when there is
  // none); throws when the fd cannot take it, with the result kept in the spool.
  void deliver_output(Entry& entry, std::size_t item, std::unique_lock<std::mutex>& lock);  // `lock` held
  void fail_item(Entry& entry, std::size_t item, const std::string& cause);  // mutex_ held
  class BoardLock;
  // mutex_ held: queue `work` for the drain (after the lock).
  void defer(std::function<void()> work);
  // mutex_ NOT held: does the queued work in order; one drain at a time keeps that order.
  void drain() noexcept;
  void log_line(Entry& entry, spdlog::level::level_enum level, std::string line);  // mutex_ held
  void persist(const Entry& entry);  // mutex_ held: the record save is deferred
  void save_record(const Job& job);  // the drain: saves and notes whether the state folder took it
  void emit(Entry& entry, protocol::EventBody body);
  void broadcast_positions();
  protocol::JobStatus summary(const Entry& entry) const;
  protocol::JobStatus shown_summary(const Entry& entry) const;  // summary(), or the entry marked damaged
  void refuse_when_queue_full(uid_t owner) const;  // mutex_ held; throws Error(resource)
  // Moves a quarantined record's spool folder beside it; returns the id when it had to stay.
  std::optional<std::string> keep_with_quarantined_record(const QuarantinedRecord& record);
  protocol::EventBody terminal_event(const Entry& entry) const;
  std::optional<std::size_t> position(const Entry& entry) const;
  const Entry& visible_entry(const std::string& id, uid_t uid) const;
  Entry& visible_entry(const std::string& id, uid_t uid);
  bool take_finished(const std::string& id);  // mutex_ held: off the board if still there, finished
  void remove_files(const std::string& id);   // its record and spool folder (not under mutex_)

  std::filesystem::path state_dir_;
  SchedulerSettings settings_;
  JobExecutor& executor_;
  JobStore store_;
  Spool spool_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::function<void()>> deferred_;  // mutex_; done by drain()
  std::mutex drain_mutex_;                       // one drain at a time
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::map<std::uint64_t, std::string> queue_;  // sequence -> id of queued jobs
  std::uint64_t next_sequence_ = 1;
  std::size_t running_ = 0;     // jobs running
  std::size_t busy_slots_ = 0;  // runs: a job spread over free slots has several
  bool dispatching_ = false;
  std::optional<std::string> held_for_;  // set while held (hold/release)
  std::optional<std::string> storage_problem_;  // the last record save failed (cleared by a success)
  bool stopping_ = false;
  std::chrono::steady_clock::time_point last_beat_;
  std::vector<std::string> devices_;
  std::map<std::string, std::size_t> running_on_;  // jobs running per device
  std::vector<std::thread> workers_;
};

}  // namespace heygem::jobs
