#pragma once
// heygemd as a cluster worker (docs/cluster.md): beside the jobs of its local socket, it takes jobs
// from a Redis stream (consumer group) whenever a device slot is free, runs them through the same
// scheduler, models and pipeline, reports progress to the job's events stream and its state to the
// job's hash, and publishes the outputs on the shared storage (temporary name + rename).
//
// Failover: the worker keeps its entries' claims fresh while they run; entries of a worker silent
// for cluster.claim_idle are taken over (XAUTOCLAIM) and rerun from the start; a job that failed
// cluster.max_attempts times, and any entry that can never run (bad spec, paths outside the media
// roots, inline input over the bound), goes to the dead-letter stream with the reason. On SIGTERM
// its running cluster jobs go back to the stream at once (hand_back).
//
// Threads: intake (reads and claims entries, hands them to the scheduler) and reporter (forwards
// events, keeps claims alive, polls cancels, finishes jobs), each with its own Redis connection.
// Neither holds the worker's lock while it calls the scheduler or Redis.
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/cluster/cluster_wire.hpp"
#include "common/cluster/redis_connection.hpp"
#include "common/protocol.hpp"
#include "daemon/cluster/cluster_config.hpp"
#include "daemon/cluster/media_roots.hpp"
#include "daemon/jobs/scheduler.hpp"

namespace heygem::cluster {

// Checks a job's options against the daemon's models (the options themselves were validated when
// the spec was parsed); returns them as the scheduler stores them. Throws heygem::Error naming the model.
using OptionsValidator = std::function<nlohmann::json(const protocol::SubmitOptions&)>;

class ClusterWorker {
 public:
  // Throws heygem::Error(invalid_argument) for an unusable config (media roots, password file).
  ClusterWorker(ClusterConfig config, jobs::Scheduler& scheduler, OptionsValidator validate,
                const std::filesystem::path& state_dir);
  ~ClusterWorker();
  ClusterWorker(const ClusterWorker&) = delete;
  ClusterWorker& operator=(const ClusterWorker&) = delete;

  // Cancels the local copies of cluster jobs that an earlier heygemd (killed) left in the scheduler:
  // their entries are still pending in Redis and are taken again from there. Call after
  // scheduler.start() while it is held.
  std::size_t recover_local_jobs();
  // Starts taking entries (once the models are ready).
  void start();
  // Stops taking entries and hands every running cluster job back to the stream at once (SIGTERM).
  void hand_back();
  // hand_back(), then ends the threads.
  void stop();

  const std::string& consumer() const { return consumer_; }

 private:
  struct Run;
  class Forwarder;
  struct QueuedMessage {
    std::string local_id;
    protocol::Response message;
  };

  void intake_loop();
  void reporter_loop();
  void ensure_group(RedisSession& redis);
  // Reads one entry: own pending ones first (a restart), then a dead worker's, then a new one.
  bool take_one(RedisSession& redis);
  void take(RedisSession& redis, const std::string& entry_id, const Fields& fields);
  void dead_letter(RedisSession& redis, const std::string& entry_id, const std::string& job_id,
                   const std::string& raw_spec, const std::string& reason);
  UniqueFd open_input(RedisSession& redis, const ClusterJobSpec& spec, const MediaRef& ref, std::size_t index);

  void forward(RedisSession& redis, Run& run, const protocol::JobEvent& event);
  // Finishes a run whose local job ended; false while Redis is unreachable (retried later).
  bool finish(RedisSession& redis, Run& run);
  void keep_alive(RedisSession& redis);
  void poll_cancels(RedisSession& redis);
  void heartbeat(RedisSession& redis, const std::string& state);
  void forget(const std::string& local_id);  // the run ended: drops it and its ledger file
  std::filesystem::path ledger_path(const std::string& local_id) const;

  ClusterConfig config_;
  ClusterNames names_;
  RedisAddress address_;
  RedisCredentials credentials_;
  std::string consumer_;
  uid_t owner_;
  jobs::Scheduler& scheduler_;
  OptionsValidator validate_;
  MediaRoots roots_;
  std::filesystem::path ledger_dir_;

  mutable std::mutex mutex_;  // runs_; never held while calling the scheduler or Redis
  std::map<std::string, std::shared_ptr<Run>> runs_;  // by local job id

  std::mutex queue_mutex_;  // events_ only: the scheduler delivers under its own lock
  std::condition_variable queue_changed_;
  std::deque<QueuedMessage> events_;

  std::atomic<bool> intake_stopping_{false}, stopping_{false};
  std::atomic<bool> started_{false};
  std::thread intake_, reporter_;
};

}  // namespace heygem::cluster
