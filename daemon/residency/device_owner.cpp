#include "daemon/residency/device_owner.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/errors.hpp"
#include "daemon/residency/device_memory.hpp"
#include "daemon/residency/forward_queue.hpp"
#include "daemon/residency/resident_model.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::residency {
namespace {

using steady = std::chrono::steady_clock;
using wall = std::chrono::system_clock;

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

std::string mib(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return text;
}

// A lease: keeps the instance resident (and counted) until destroyed.
class Lease final : public ModelLease {
 public:
  Lease(std::shared_ptr<DeviceOwner> owner, std::string name, std::shared_ptr<LoadedModel> loaded)
      : owner_(std::move(owner)), name_(std::move(name)), loaded_(std::move(loaded)) {}
  ~Lease() override { owner_->release(name_, loaded_); }
  const models::Wav2LipGenerator* generator() const override { return loaded_->model->generator(); }
  const models::FaceDetector* detector() const override { return loaded_->model->detector(); }
  const models::GfpganRestorer* restorer() const override { return loaded_->model->restorer(); }
  const std::string& name() const override { return name_; }
  ForwardQueue& forwards() const override { return owner_->forwards(); }

 private:
  std::shared_ptr<DeviceOwner> owner_;
  std::string name_;
  std::shared_ptr<LoadedModel> loaded_;
};

}  // namespace

LoadedModel::~LoadedModel() = default;

std::optional<FileStamp> stamp_of(const std::filesystem::path& weights) {
  if (weights.empty()) return std::nullopt;
  std::error_code error;
  FileStamp stamp;
  stamp.size = std::filesystem::file_size(weights, error);
  if (error) return std::nullopt;
  stamp.modified = std::filesystem::last_write_time(weights, error);
  if (error) return std::nullopt;
  return stamp;
}

bool same_spec(const ModelSpec& a, const ModelSpec& b) {
  // The devices are the registry's: one slot is one replica, whatever the others are.
  return a.name == b.name && a.kind == b.kind && a.weights == b.weights &&
         a.precision == b.precision && a.preload == b.preload && a.keep_alive == b.keep_alive;
}

DeviceOwner::DeviceOwner(std::string device, OwnerSettings settings)
    : device_(std::move(device)),
      torch_device_(models::parse_placement(device_, "float32").device),
      settings_(std::move(settings)),
      forwards_(std::make_unique<ForwardQueue>(device_, settings_.batching)) {}

DeviceOwner::~DeviceOwner() { stop(); }

void DeviceOwner::start() {
  Lock lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  next_heartbeat_ = steady::now() + settings_.heartbeat_interval;
  thread_ = std::thread([this] { run(); });
}

void DeviceOwner::stop() {
  {
    Lock lock(mutex_);
    stopping_ = true;
    // Loads that never ran fail their waiters instead of leaving them hanging.
    tasks_.clear();
    for (auto& [name, slot] : slots_) slot.loading = false;
  }
  wake_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void DeviceOwner::update_settings(const OwnerSettings& settings) {
  Lock lock(mutex_);
  settings_ = settings;
  forwards_->update_settings(settings.batching);
  next_heartbeat_ = std::min(next_heartbeat_, steady::now() + settings_.heartbeat_interval);
  wake_.notify_all();
}

void DeviceOwner::add(const ModelSpec& spec) {
  Lock lock(mutex_);
  slots_[spec.name].spec = spec;
}

bool DeviceOwner::has(const std::string& name) const {
  Lock lock(mutex_);
  return find(name) != nullptr;
}

DeviceOwner::Slot* DeviceOwner::find(const std::string& name) {
  const auto it = slots_.find(name);
  return it == slots_.end() ? nullptr : &it->second;
}

const DeviceOwner::Slot* DeviceOwner::find(const std::string& name) const {
  const auto it = slots_.find(name);
  return it == slots_.end() ? nullptr : &it->second;
}

DeviceOwner::Slot& DeviceOwner::slot_or_throw(const std::string& name) {
  if (Slot* slot = find(name)) return *slot;
  throw Error(ErrorCode::not_found, "no model named '" + name + "' on " + device_);
}

void DeviceOwner::post(std::function<void()> task, Lock&) {
  if (stopping_) throw Error(ErrorCode::cancelled, "the model owner of " + device_ + " is stopping");
  tasks_.push_back(std::move(task));
  wake_.notify_all();
}

template <class Result>
Result DeviceOwner::run_on_owner(std::function<Result()> task) {
  auto promise = std::make_shared<std::promise<Result>>();
  auto future = promise->get_future();
  {
    Lock lock(mutex_);
    post(
        [task = std::move(task), promise] {
          try {
            if constexpr (std::is_void_v<Result>) {
              task();
              promise->set_value();
            } else {
              promise->set_value(task());
            }
          } catch (...) {
            promise->set_exception(std::current_exception());
          }
        },
        lock);
  }
  return future.get();
}

// --- loading -------------------------------------------------------------------------------------

std::shared_future<void> DeviceOwner::request_load(const std::string& name) {
  Lock lock(mutex_);
  Slot& slot = slot_or_throw(name);
  if (slot.current && !slot.unhealthy && !slot.loading) {
    std::promise<void> done;
    done.set_value();
    return done.get_future().share();
  }
  return start_load(slot, lock);
}

std::shared_future<void> DeviceOwner::start_load(Slot& slot, Lock& lock) {
  if (slot.loading) return slot.pending_load;
  auto done = std::make_shared<std::promise<void>>();
  slot.pending_load = done->get_future().share();
  slot.loading = true;
  post([this, name = slot.spec.name, spec = slot.spec, done] { load_task(name, spec, done); }, lock);
  return slot.pending_load;
}

void DeviceOwner::load_task(const std::string& name, const ModelSpec& spec, const std::shared_ptr<std::promise<void>>& done) {
  const system::ScopedLogFields fields({"", name, "load"});  // MODEL= and STAGE= in the journal
  std::shared_ptr<LoadedModel> loaded;
  std::exception_ptr failure;
  std::string message;
  bool refused_for_room = false;  // the budget said no: not a health problem
  try {
    loaded = build(spec);
  } catch (const Error& error) {
    failure = std::current_exception();
    message = error.what();
    refused_for_room = error.code() == ErrorCode::resource;
  } catch (const std::exception& error) {
    failure = std::current_exception();
    message = error.what();
  }
  {
    Lock lock(mutex_);
    Slot* slot = find(name);
    if (slot && same_spec(slot->spec, spec)) {
      slot->loading = false;
      if (loaded) {
        put_current(*slot, loaded);
      } else if (refused_for_room) {
        slot->error = message;
      } else {
        // A failed (re)load leaves the slot unhealthy: healthy() says so and jobs get the cause.
        slot->unhealthy = true;
        slot->retry_on_heartbeat = slot->retry_on_heartbeat || spec.preload;
        slot->error = message;
      }
    } else if (slot) {
      slot->loading = false;  // the spec changed meanwhile (hot reload): this instance is stale
    }
  }
  wake_.notify_all();
  if (failure) {
    spdlog::error("model {}: load failed on {}: {}", name, device_, message);
    done->set_exception(failure);
  } else {
    done->set_value();
  }
}

std::shared_ptr<LoadedModel> DeviceOwner::build(const ModelSpec& spec) {
  const auto started = steady::now();
  HostWeights host = read_host_weights(spec, device_);
  const std::uint64_t bytes = host.device_bytes;
  {
    Lock lock(mutex_);
    make_room(spec, bytes, lock);
    reserved_bytes_ += bytes;
  }
  struct Unreserve {
    DeviceOwner* owner;
    std::uint64_t bytes;
    ~Unreserve() {
      const std::lock_guard lock(owner->mutex_);
      owner->reserved_bytes_ -= bytes;
    }
  } unreserve{this, bytes};

  const auto placement = host.placement;
  const auto memory_before = cuda_memory(placement.device);
  auto loaded = std::make_shared<LoadedModel>();
  loaded->stamp = stamp_of(spec.weights);
  loaded->model = std::make_unique<ResidentModel>(spec, std::move(host));
  synchronize(placement.device);
  loaded->load_seconds = seconds_since(started);

  const auto warm_started = steady::now();
  {
    Lock lock(mutex_);
    const auto warmup = settings_.warmup;
    lock.unlock();
    // On the forward queue: a warm-up never runs beside a job's batch on this device.
    forwards_->run_exclusive("warm-up", [&] {
      const system::ScopedLogFields stage({"", spec.name, "warmup"});
      loaded->model->warm_up(warmup);
    });
  }
  loaded->warmup_seconds = seconds_since(warm_started);
  loaded->loaded_at = wall::now();

  loaded->resident_bytes = loaded->model->parameter_bytes();
  std::string allocator;
  if (const auto after = cuda_memory(placement.device); after && memory_before) {
    const auto grown = after->allocated > memory_before->allocated ? after->allocated - memory_before->allocated : 0;
    loaded->resident_bytes = std::max(loaded->resident_bytes, grown);
    allocator = ", CUDA allocator " + mib(after->allocated) + " allocated / " + mib(after->reserved) + " reserved";
    // What the warm-up's activations reserved goes back to the driver: idle memory is the weights,
    // the CUDA context and cuDNN's plans; a job reserves its own again in its first batches.
    release_cached_memory(placement.device);
    if (const auto idle = cuda_memory(placement.device)) allocator += " (" + mib(idle->reserved) + " after the warm-up)";
  }
  spdlog::info("model {} ({}{}) on {} {}: loaded in {:.2f} s, warmed up in {:.2f} s, resident {}{}", spec.name,
               to_string(spec.kind), loaded->model->untrained() ? ", UNTRAINED hash-init weights" : "", device_,
               spec.precision, loaded->load_seconds, loaded->warmup_seconds, mib(loaded->resident_bytes), allocator);
  return loaded;
}

std::uint64_t DeviceOwner::resident_total() const {
  std::uint64_t total = reserved_bytes_;
  for (const auto& [name, slot] : slots_)
    if (slot.current) total += slot.current->resident_bytes;
  for (const auto& loaded : retired_) total += loaded->resident_bytes;
  for (const auto& loaded : staged_) total += loaded->resident_bytes;
  return total;
}

void DeviceOwner::make_room(const ModelSpec& spec, std::uint64_t bytes, Lock& lock) {
  if (!settings_.memory_budget_bytes) return;
  const std::uint64_t budget = *settings_.memory_budget_bytes;
  bool evicted = false;
  while (resident_total() + bytes > budget) {
    Slot* victim = nullptr;
    for (auto& [name, slot] : slots_) {
      const bool idle = slot.current && slot.current->leases == 0 && slot.waiters == 0 && !slot.loading;
      if (idle && name != spec.name && (!victim || slot.last_used < victim->last_used)) victim = &slot;
    }
    if (!victim) {
      std::string in_use;
      for (const auto& [name, slot] : slots_)
        if (slot.current && name != spec.name)
          in_use += (in_use.empty() ? "" : ", ") + name + " " + mib(slot.current->resident_bytes) + " (" +
                    std::to_string(slot.current->leases) + " leases)";
      for (const auto& loaded : retired_)
        in_use += (in_use.empty() ? "" : ", ") + std::string("a replaced instance ") + mib(loaded->resident_bytes);
      throw Error(ErrorCode::resource, "model " + spec.name + " needs " + mib(bytes) + " on " + device_ +
                                           " but the memory budget is " + mib(budget) + " and " +
                                           mib(resident_total()) + " are held by models in use or loading" +
                                           (in_use.empty() ? std::string() : ": " + in_use));
    }
    spdlog::info("model {}: unloaded from {} (least recently used, idle) to make room for {} ({})", victim->spec.name,
                 device_, spec.name, mib(bytes));
    drop_current(*victim);
    evicted = true;
  }
  if (evicted) {
    lock.unlock();
    release_cached_memory(torch_device_);
    lock.lock();
  }
}

void DeviceOwner::put_current(Slot& slot, std::shared_ptr<LoadedModel> loaded) {
  if (slot.current && slot.current->leases > 0) retired_.push_back(slot.current);
  slot.current = std::move(loaded);
  slot.unhealthy = false;
  slot.retry_on_heartbeat = false;
  slot.error.clear();
  slot.generation += 1;
  slot.heartbeats = 0;
  slot.last_heartbeat_ms = -1;
  slot.last_heartbeat_at.reset();
  slot.last_used = steady::now();
  arm_expiry(slot);
}

void DeviceOwner::drop_current(Slot& slot) {
  if (slot.current && slot.current->leases > 0) retired_.push_back(slot.current);
  slot.current.reset();
  slot.expires_at.reset();
}

void DeviceOwner::arm_expiry(Slot& slot) {
  slot.expires_at.reset();
  if (slot.current && slot.current->leases == 0 && slot.spec.keep_alive)
    slot.expires_at = slot.last_used + *slot.spec.keep_alive;
}

// --- leases --------------------------------------------------------------------------------------

std::shared_ptr<ModelLease> DeviceOwner::acquire(const std::string& name, const LoadingCallback& on_loading) {
  Lock lock(mutex_);
  bool announced = false;
  for (;;) {
    Slot& slot = slot_or_throw(name);
    if (slot.current && !slot.unhealthy && !slot.loading) {
      slot.current->leases += 1;
      slot.expires_at.reset();
      slot.last_used = steady::now();
      return std::make_shared<Lease>(shared_from_this(), name, slot.current);
    }
    auto pending = start_load(slot, lock);
    slot.waiters += 1;
    lock.unlock();
    if (!announced && on_loading) on_loading(name);
    announced = true;
    std::exception_ptr failure;
    try {
      pending.get();
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (Slot* again = find(name)) again->waiters -= 1;
    if (failure) std::rethrow_exception(failure);
  }
}

void DeviceOwner::release(const std::string& name, const std::shared_ptr<LoadedModel>& loaded) {
  {
    Lock lock(mutex_);
    loaded->leases -= 1;
    if (Slot* slot = find(name); slot && slot->current == loaded) {
      slot->last_used = steady::now();
      arm_expiry(*slot);
    }
  }
  wake_.notify_all();
}

std::size_t DeviceOwner::unload(const std::string& name) {
  std::size_t count = 0;
  {
    Lock lock(mutex_);
    if (!name.empty()) {
      Slot& slot = slot_or_throw(name);
      if (slot.current && slot.current->leases > 0)
        throw Error(ErrorCode::resource, "model " + name + " is in use by " + std::to_string(slot.current->leases) +
                                             " job(s); it unloads when they finish and keep_alive expires");
    }
    for (auto& [slot_name, slot] : slots_) {
      const bool wanted = name.empty() || slot_name == name;
      if (wanted && slot.current && slot.current->leases == 0 && slot.waiters == 0 && !slot.loading) {
        drop_current(slot);
        spdlog::info("model {}: unloaded from {} on request", slot_name, device_);
        ++count;
      }
    }
  }
  if (count > 0) release_cached_memory(torch_device_);
  return count;
}

// --- hot reload ----------------------------------------------------------------------------------

std::shared_ptr<LoadedModel> DeviceOwner::stage(const ModelSpec& spec) {
  return run_on_owner<std::shared_ptr<LoadedModel>>([this, spec] {
    auto loaded = build(spec);
    const std::lock_guard lock(mutex_);
    staged_.push_back(loaded);
    return loaded;
  });
}

void DeviceOwner::install(const ModelSpec& spec, std::shared_ptr<LoadedModel> staged) {
  {
    Lock lock(mutex_);
    std::erase(staged_, staged);
    Slot& slot = slots_[spec.name];
    const bool same = same_spec(slot.spec, spec);
    slot.spec = spec;
    if (staged) {
      put_current(slot, std::move(staged));
    } else if (!same) {
      drop_current(slot);  // settings changed and nothing staged: the next acquire loads afresh
      slot.unhealthy = false;
      slot.error.clear();
    }
    arm_expiry(slot);
  }
  wake_.notify_all();
}

void DeviceOwner::discard(std::shared_ptr<LoadedModel> staged) {
  {
    Lock lock(mutex_);
    std::erase(staged_, staged);
  }
  staged.reset();
  release_cached_memory(torch_device_);
}

void DeviceOwner::remove(const std::string& name) {
  {
    Lock lock(mutex_);
    if (Slot* slot = find(name)) {
      drop_current(*slot);
      slots_.erase(name);
    }
  }
  wake_.notify_all();
}

bool DeviceOwner::resident(const std::string& name) const {
  Lock lock(mutex_);
  const Slot* slot = find(name);
  return slot && slot->current;
}

bool DeviceOwner::weights_changed(const std::string& name) const {
  Lock lock(mutex_);
  const Slot* slot = find(name);
  return slot && slot->current && slot->current->stamp != stamp_of(slot->spec.weights);
}

// --- the owner thread ----------------------------------------------------------------------------

void DeviceOwner::run() {
  Lock lock(mutex_);
  while (!stopping_) {
    if (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
      continue;
    }
    drop_released_retired(lock);
    expire_idle(lock);
    if (steady::now() >= next_heartbeat_) {
      heartbeat(lock);
      continue;  // the heartbeat may have queued reloads
    }
    wake_.wait_until(lock, next_wakeup());
  }
}

std::chrono::steady_clock::time_point DeviceOwner::next_wakeup() const {
  auto wakeup = next_heartbeat_;
  for (const auto& [name, slot] : slots_)
    if (slot.expires_at) wakeup = std::min(wakeup, *slot.expires_at);
  return wakeup;
}

void DeviceOwner::drop_released_retired(Lock& lock) {
  std::vector<std::shared_ptr<LoadedModel>> released;
  std::erase_if(retired_, [&](const std::shared_ptr<LoadedModel>& loaded) {
    if (loaded->leases > 0) return false;
    released.push_back(loaded);
    return true;
  });
  // Staged instances no longer referenced by a reload in progress were discarded.
  if (released.empty()) return;
  lock.unlock();
  released.clear();  // frees the weights outside the lock
  release_cached_memory(torch_device_);
  lock.lock();
}

void DeviceOwner::expire_idle(Lock& lock) {
  const auto now = steady::now();
  bool freed = false;
  for (auto& [name, slot] : slots_) {
    const bool idle = slot.current && slot.current->leases == 0 && slot.waiters == 0 && !slot.loading;
    if (idle && slot.expires_at && *slot.expires_at <= now) {
      spdlog::info("model {}: keep_alive expired, unloaded from {}", name, device_);
      drop_current(slot);
      freed = true;
    }
  }
  if (!freed) return;
  lock.unlock();
  release_cached_memory(torch_device_);
  lock.lock();
}

void DeviceOwner::heartbeat(Lock& lock) {
  next_heartbeat_ = steady::now() + settings_.heartbeat_interval;
  if (busy_ > 0) {
    spdlog::debug("heartbeat {}: skipped, a job runs on this device", device_);
    return;
  }
  std::vector<std::pair<std::string, std::shared_ptr<LoadedModel>>> probes;
  for (auto& [name, slot] : slots_) {
    if (slot.current && !slot.unhealthy && !slot.loading) probes.emplace_back(name, slot.current);
    else if (slot.unhealthy && slot.retry_on_heartbeat && !slot.loading) {
      spdlog::info("heartbeat {}: retrying the load of unhealthy model {}", device_, name);
      start_load(slot, lock);
    }
  }
  if (probes.empty()) return;
  heartbeat_running_ = true;
  spdlog::debug("heartbeat {}: probing {} model(s)", device_, probes.size());
  lock.unlock();
  struct Outcome {
    double milliseconds = -1;
    std::string error;
  };
  std::vector<Outcome> outcomes;
  for (const auto& [name, loaded] : probes) {
    Outcome outcome;
    try {
      // Through the forward queue, as one exclusive task: a probe never overlaps a batch.
      forwards_->run_exclusive("heartbeat", [&] {
        const auto started = steady::now();
        loaded->model->probe();
        synchronize(loaded->model->placement().device);
        outcome.milliseconds = seconds_since(started) * 1000.0;
      });
      spdlog::debug("heartbeat {}: model {} ok in {:.1f} ms", device_, name, outcome.milliseconds);
    } catch (const std::exception& error) {
      outcome.error = error.what();
    }
    outcomes.push_back(outcome);
  }
  lock.lock();
  heartbeat_running_ = false;
  heartbeat_done_.notify_all();
  std::string summary;
  int failed = 0;
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const auto& [name, loaded] = probes[i];
    const auto& outcome = outcomes[i];
    Slot* slot = find(name);
    if (!slot || slot->current != loaded) continue;  // swapped meanwhile
    slot->last_heartbeat_at = wall::now();
    if (outcome.error.empty()) {
      slot->last_heartbeat_ms = outcome.milliseconds;
      slot->heartbeats += 1;
      char part[96];
      std::snprintf(part, sizeof part, "%s%s %.1f ms", summary.empty() ? "" : ", ", name.c_str(), outcome.milliseconds);
      summary += part;
      continue;
    }
    ++failed;
    spdlog::error("heartbeat {}: model {} unhealthy: {}; reloading it", device_, name, outcome.error);
    slot->unhealthy = true;
    slot->retry_on_heartbeat = true;
    slot->error = outcome.error;
    start_load(*slot, lock);
  }
  const auto forwards = forwards_->stats();
  spdlog::info("heartbeat {}: {} ok{}{}; forwards so far: {} batches, {:.2f} tasks per batch, {} dropped by cancels",
               device_, probes.size() - static_cast<std::size_t>(failed), summary.empty() ? "" : " (" + summary + ")",
               failed ? ", " + std::to_string(failed) + " unhealthy" : "", forwards.batches, forwards.tasks_per_batch(),
               forwards.dropped);
}

void DeviceOwner::set_busy(bool busy) {
  Lock lock(mutex_);
  busy_ = std::max(0, busy_ + (busy ? 1 : -1));
  // A heartbeat that began before this job must not run beside it: the job starts after it.
  if (busy) heartbeat_done_.wait(lock, [&] { return !heartbeat_running_; });
}

// --- status --------------------------------------------------------------------------------------

ModelStatus DeviceOwner::status_of(const Slot& slot) const {
  ModelStatus row;
  row.name = slot.spec.name;
  row.kind = to_string(slot.spec.kind);
  row.device = device_;
  row.precision = slot.spec.precision;
  row.generation = slot.generation;
  row.error = slot.error;
  row.untrained = slot.spec.kind == ModelKind::wav2lip && slot.spec.weights.empty();
  row.source = slot.spec.weights.empty() ? "" : slot.spec.weights.string();
  if (slot.loading) row.state = "loading";
  else if (slot.unhealthy) row.state = "unhealthy";
  else if (slot.current) row.state = slot.current->leases > 0 ? "busy" : "warm";
  else row.state = "unloaded";
  if (slot.current) {
    row.resident_bytes = slot.current->resident_bytes;
    row.leases = slot.current->leases;
    row.load_seconds = slot.current->load_seconds;
    row.warmup_seconds = slot.current->warmup_seconds;
    row.loaded_at = slot.current->loaded_at;
    row.source = slot.current->model->source();
    row.untrained = slot.current->model->untrained();
  }
  row.last_heartbeat_ms = slot.last_heartbeat_ms;
  row.last_heartbeat_at = slot.last_heartbeat_at;
  row.heartbeats = slot.heartbeats;
  row.keep_alive = slot.spec.keep_alive;
  if (slot.expires_at)
    row.expires_at = wall::now() + std::chrono::duration_cast<wall::duration>(*slot.expires_at - steady::now());
  return row;
}

std::vector<ModelStatus> DeviceOwner::status() const {
  Lock lock(mutex_);
  std::vector<ModelStatus> rows;
  for (const auto& [name, slot] : slots_) rows.push_back(status_of(slot));
  return rows;
}

bool DeviceOwner::healthy() const {
  Lock lock(mutex_);
  return std::none_of(slots_.begin(), slots_.end(), [](const auto& entry) { return entry.second.unhealthy; });
}

}  // namespace heygem::residency
