#pragma once
// The owner of one device's models (one replica of each model placed there) (llama.cpp-server style): a single thread that loads, warms,
// heart-beats, expires and unloads them, fed through a task queue. Callers only take leases;
// state is guarded by one mutex and the heavy work (loads, inference) runs outside it.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <c10/core/Device.h>

#include "daemon/residency/model_registry.hpp"

namespace heygem::residency {

class ResidentModel;

struct OwnerSettings {
  std::chrono::milliseconds heartbeat_interval{300'000};
  std::optional<std::uint64_t> memory_budget_bytes;
  WarmupShapes warmup;
  BatchingSettings batching;
};

// A weights file's identity when it was read, to notice a replaced file on reload.
struct FileStamp {
  std::uintmax_t size = 0;
  std::filesystem::file_time_type modified{};
  bool operator==(const FileStamp&) const = default;
};
std::optional<FileStamp> stamp_of(const std::filesystem::path& weights);

bool same_spec(const ModelSpec& a, const ModelSpec& b);

// One loaded instance and its bookkeeping (leases are counted under the owner's mutex).
struct LoadedModel {
  std::unique_ptr<ResidentModel> model;
  std::optional<FileStamp> stamp;
  std::uint64_t resident_bytes = 0;
  double load_seconds = 0, warmup_seconds = 0;
  std::chrono::system_clock::time_point loaded_at;
  int leases = 0;
  ~LoadedModel();
};

class DeviceOwner : public std::enable_shared_from_this<DeviceOwner> {
 public:
  DeviceOwner(std::string device, OwnerSettings settings);
  ~DeviceOwner();
  DeviceOwner(const DeviceOwner&) = delete;
  DeviceOwner& operator=(const DeviceOwner&) = delete;

  const std::string& device() const { return device_; }
  // Where every forward on this device runs: the items' batches, warm-ups and heartbeats.
  ForwardQueue& forwards() const { return *forwards_; }
  void start();
  void stop();
  void update_settings(const OwnerSettings& settings);

  // Slots (configured models) of this device.
  void add(const ModelSpec& spec);
  bool has(const std::string& name) const;

  // Starts a load unless one runs or the model is resident; the future completes when it is warm.
  std::shared_future<void> request_load(const std::string& name);
  std::shared_ptr<ModelLease> acquire(const std::string& name, const LoadingCallback& on_loading);
  std::size_t unload(const std::string& name);  // empty = all idle

  // Hot reload: stage() loads and warms a replacement beside the current instance (on the owner
  // thread; it counts against the budget until installed or discarded); install() swaps it in for
  // new acquires (leases in flight keep the old instance); remove() drops a slot.
  std::shared_ptr<LoadedModel> stage(const ModelSpec& spec);
  void install(const ModelSpec& spec, std::shared_ptr<LoadedModel> staged);
  void discard(std::shared_ptr<LoadedModel> staged);  // the caller's last reference
  void remove(const std::string& name);
  // True when the slot is resident and its weights file changed since it was read.
  bool resident(const std::string& name) const;
  bool weights_changed(const std::string& name) const;

  std::vector<ModelStatus> status() const;
  bool healthy() const;
  void set_busy(bool busy);
  void release(const std::string& name, const std::shared_ptr<LoadedModel>& loaded);

 private:
  struct Slot {
    ModelSpec spec;
    std::shared_ptr<LoadedModel> current;
    bool loading = false;
    std::shared_future<void> pending_load;
    int waiters = 0;                 // acquirers waiting for pending_load: not to be expired/evicted
    bool unhealthy = false;
    bool retry_on_heartbeat = false;  // reload an unhealthy model at each heartbeat
    std::string error;
    std::chrono::steady_clock::time_point last_used{};
    std::optional<std::chrono::steady_clock::time_point> expires_at;
    double last_heartbeat_ms = -1;
    std::optional<std::chrono::system_clock::time_point> last_heartbeat_at;
    std::uint64_t heartbeats = 0;
    std::uint64_t generation = 0;
  };
  using Lock = std::unique_lock<std::mutex>;

  void run();
  void post(std::function<void()> task, Lock& lock);
  template <class Result>
  Result run_on_owner(std::function<Result()> task);
  Slot* find(const std::string& name);
  const Slot* find(const std::string& name) const;
  Slot& slot_or_throw(const std::string& name);
  std::shared_future<void> start_load(Slot& slot, Lock& lock);
  void load_task(const std::string& name, const ModelSpec& spec, const std::shared_ptr<std::promise<void>>& done);
  std::shared_ptr<LoadedModel> build(const ModelSpec& spec);
  void make_room(const ModelSpec& spec, std::uint64_t bytes, Lock& lock);
  std::uint64_t resident_total() const;
  void put_current(Slot& slot, std::shared_ptr<LoadedModel> loaded);
  void drop_current(Slot& slot);
  void arm_expiry(Slot& slot);
  void expire_idle(Lock& lock);
  void drop_released_retired(Lock& lock);
  void heartbeat(Lock& lock);
  std::chrono::steady_clock::time_point next_wakeup() const;
  ModelStatus status_of(const Slot& slot) const;

  const std::string device_;       // the replica's: "cpu", "cpu:1", "cuda:0"
  const c10::Device torch_device_;  // torch's (every CPU replica shares its one CPU device)
  OwnerSettings settings_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;      // the owner thread: tasks, releases, deadlines, stop
  std::map<std::string, Slot> slots_;
  std::vector<std::shared_ptr<LoadedModel>> retired_;  // replaced or removed, still leased
  std::vector<std::shared_ptr<LoadedModel>> staged_;   // hot-reload replacements not yet installed
  std::uint64_t reserved_bytes_ = 0;                   // a load in progress (counted in the budget)
  std::deque<std::function<void()>> tasks_;
  int busy_ = 0;
  bool heartbeat_running_ = false;    // probes run outside the lock; a job starting waits for them
  std::condition_variable heartbeat_done_;
  std::chrono::steady_clock::time_point next_heartbeat_;
  bool stopping_ = false;
  std::unique_ptr<ForwardQueue> forwards_;
  std::thread thread_;
};

}  // namespace heygem::residency
