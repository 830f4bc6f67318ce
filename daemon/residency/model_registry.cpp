#include "daemon/residency/model_registry.hpp"

#include <ATen/Context.h>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "common/errors.hpp"
#include "daemon/residency/device_owner.hpp"
#include "daemon/residency/resident_model.hpp"

namespace heygem::residency {
namespace {

std::vector<std::string> resolve(const ModelSpec& spec) {
  std::vector<std::string> devices;
  const auto add = [&](const std::string& device) {
    const auto canonical = models::replica_text(device);
    if (std::find(devices.begin(), devices.end(), canonical) == devices.end()) devices.push_back(canonical);
  };
  for (const auto& written : spec.devices) {
    if (written == "auto") {
      add(auto_device().device);
    } else if (written == "all") {
      const auto count = at::hasCUDA() ? torch::cuda::device_count() : 0;
      for (std::size_t i = 0; i < count; ++i) add("cuda:" + std::to_string(i));
      if (count == 0) add("cpu");
    } else {
      add(written);
    }
  }
  if (devices.empty()) throw Error(ErrorCode::invalid_argument, "no device");
  for (const auto& device : devices) models::parse_placement(device, spec.precision);  // this build and machine can
  return devices;
}

std::string origin_prefix(const ModelSpec& spec);

const ModelSpec* find_spec(const ResidencyConfig& config, const std::string& name) {
  const auto it = std::find_if(config.models.begin(), config.models.end(), [&](const ModelSpec& spec) { return spec.name == name; });
  return it == config.models.end() ? nullptr : &*it;
}

void check_default(const ResidencyConfig& config, const std::string& name, ModelRole role) {
  if (name.empty()) return;  // acquiring the default then fails with not_found
  const ModelSpec* spec = find_spec(config, name);
  const std::string key = "default_" + to_string(role);
  if (!spec) throw Error(ErrorCode::invalid_argument, key + ": no model named '" + name + "'");
  if (role_of(spec->kind) != role)
    throw Error(ErrorCode::invalid_argument, key + ": model '" + name + "' is a " + to_string(spec->kind) + " " +
                                                 to_string(role_of(spec->kind)) + ", not a " + to_string(role));
}

// The restorer --enhance uses without a name: the configured default, else the only gfpgan entry.
std::string default_restorer(const ResidencyConfig& config) {
  if (!config.default_restorer.empty()) return config.default_restorer;
  std::string only;
  for (const auto& spec : config.models) {
    if (spec.kind != ModelKind::gfpgan) continue;
    if (!only.empty()) return "";
    only = spec.name;
  }
  return only;
}

}  // namespace

AutoDevice auto_device() {
  if (!at::hasCUDA())
    return {"cpu", "this heygemd is a CPU-only build (its libtorch has no CUDA; scripts/setup.sh --gpu builds the GPU one)"};
  const auto count = torch::cuda::device_count();
  if (count == 0) return {"cpu", "this GPU build sees no CUDA device (driver, CUDA_VISIBLE_DEVICES?)"};
  return {"cuda:0", std::to_string(count) + " CUDA device(s) visible; devices: all uses every one"};
}

std::vector<std::string> replica_devices(const ModelSpec& spec) {
  try {
    return resolve(spec);
  } catch (const Error& error) {
    throw Error(ErrorCode::invalid_argument, origin_prefix(spec) + "model " + spec.name + ": " + error.what());
  }
}

namespace {

// "heygemd.yaml: line 12: models.entries[0]: " for errors about an entry (nothing when unknown).
std::string origin_prefix(const ModelSpec& spec) { return spec.origin.empty() ? "" : spec.origin + ": "; }

void check_weights_readable(const ModelSpec& spec) {
  if (spec.weights.empty()) return;
  std::error_code error;
  if (!std::filesystem::is_regular_file(spec.weights, error))
    throw Error(ErrorCode::invalid_argument,
                origin_prefix(spec) + "model " + spec.name + ": weights file not found: " + spec.weights.string());
}

void validate(const ResidencyConfig& config) {
  std::set<std::string> names;
  for (const auto& spec : config.models) {
    if (spec.name.empty()) throw Error(ErrorCode::invalid_argument, origin_prefix(spec) + "models: an entry has no name");
    if (!names.insert(spec.name).second)
      throw Error(ErrorCode::invalid_argument, origin_prefix(spec) + "models: duplicate name '" + spec.name + "'");
    if (spec.kind != ModelKind::wav2lip && spec.weights.empty())
      throw Error(ErrorCode::invalid_argument, origin_prefix(spec) + "model " + spec.name + ": kind " +
                                                   to_string(spec.kind) + " needs a weights file");
    replica_devices(spec);
  }
  check_default(config, config.default_generator, ModelRole::generator);
  check_default(config, config.default_detector, ModelRole::detector);
  check_default(config, config.default_restorer, ModelRole::restorer);
  if (config.heartbeat_interval.count() <= 0)
    throw Error(ErrorCode::invalid_argument, "heartbeat_interval: must be positive");
}

}  // namespace

void validate_config(const ResidencyConfig& config) {
  validate(config);
  for (const auto& spec : config.models) check_weights_readable(spec);
}

namespace {

OwnerSettings settings_of(const ResidencyConfig& config) {
  return OwnerSettings{config.heartbeat_interval, config.memory_budget_bytes, config.warmup, config.batching};
}

class Registry final : public ModelRegistry {
 public:
  explicit Registry(const ResidencyConfig& config) : config_(config) {
    validate(config_);
    for (const auto& spec : config_.models) place(spec);
    log_auto_choice(config_);
  }
  ~Registry() override { stop(); }

  void start() override {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::pair<std::string, std::shared_future<void>>> loads;
    {
      const std::lock_guard lock(mutex_);
      for (const auto& spec : config_.models)
        if (spec.preload)
          for (const auto& device : devices_of_.at(spec.name))
            loads.emplace_back(spec.name, owners_.at(device)->request_load(spec.name));
    }
    for (auto& [name, load] : loads) load.get();  // throws the load's own error, which names the model
    spdlog::info("residency: {} preload replica(s) warm in {:.2f} s", loads.size(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }

  void stop() override {
    std::map<std::string, std::shared_ptr<DeviceOwner>> owners;
    {
      const std::lock_guard lock(mutex_);
      owners = owners_;
    }
    for (auto& [device, owner] : owners) owner->stop();
  }

  std::shared_ptr<ModelLease> acquire_generator(const std::string& name, const std::string& device,
                                                const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::generator, device, on_loading);
  }
  std::shared_ptr<ModelLease> acquire_detector(const std::string& name, const std::string& device,
                                               const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::detector, device, on_loading);
  }
  // The restorer runs on its first replica.
  std::shared_ptr<ModelLease> acquire_restorer(const std::string& name, const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::restorer, "", on_loading);
  }

  std::vector<std::string> replicas(const std::string& requested, bool generator) const override {
    const std::lock_guard lock(mutex_);
    const auto& name = requested.empty() ? (generator ? config_.default_generator : config_.default_detector) : requested;
    const auto it = devices_of_.find(name);
    return it == devices_of_.end() ? std::vector<std::string>{} : it->second;
  }

  void load(const std::string& name) override {
    std::vector<std::shared_future<void>> loads;
    for (auto& owner : owners_of(name)) loads.push_back(owner->request_load(name));
    for (auto& load : loads) load.get();
  }

  std::size_t unload(const std::string& name) override {
    std::size_t count = 0;
    if (!name.empty()) {
      for (auto& owner : owners_of(name)) count += owner->unload(name);
      return count;
    }
    for (auto& [device, owner] : owners()) count += owner->unload("");
    return count;
  }

  void reload(const ResidencyConfig& config) override {
    const std::lock_guard reloading(reload_mutex_);
    validate(config);
    std::vector<Change> changes;
    try {
      for (const auto& spec : config.models)
        for (const auto& device : replica_devices(spec)) changes.push_back(plan(spec, device));
    } catch (const std::exception& error) {
      for (auto& change : changes)
        if (change.staged) change.owner->discard(std::move(change.staged));
      const auto code = dynamic_cast<const Error*>(&error) ? dynamic_cast<const Error&>(error).code() : ErrorCode::internal;
      spdlog::error("reload failed, the previous models keep serving: {}", error.what());
      throw Error(code, std::string("reload failed, the previous models keep serving: ") + error.what());
    }
    apply(config, changes);
  }

  std::vector<ModelStatus> status() const override {
    std::map<std::pair<std::string, std::string>, ModelStatus> by_replica;  // (name, device)
    for (auto& [device, owner] : owners())
      for (auto& row : owner->status()) by_replica[{row.name, row.device}] = std::move(row);
    std::vector<ModelStatus> rows;
    const std::lock_guard lock(mutex_);
    for (const auto& spec : config_.models)
      for (const auto& device : devices_of_.at(spec.name))
        if (auto it = by_replica.find({spec.name, device}); it != by_replica.end()) rows.push_back(std::move(it->second));
    return rows;
  }

  bool healthy() const override {
    const auto all = owners();
    return std::all_of(all.begin(), all.end(), [](const auto& entry) { return entry.second->healthy(); });
  }

  void set_device_busy(const std::string& device, bool busy) override {
    std::string canonical;
    try {
      canonical = models::replica_text(device);
    } catch (const Error&) {
      return;  // a device with no models cannot be heart-beaten anyway
    }
    const std::lock_guard lock(mutex_);
    if (const auto it = owners_.find(canonical); it != owners_.end()) it->second->set_busy(busy);
  }

 private:
  // One replica of a reload.
  struct Change {
    ModelSpec spec;
    std::shared_ptr<DeviceOwner> owner;  // the replica's device
    bool existed = false;                // the model had a replica there before
    std::shared_ptr<LoadedModel> staged;  // replacement loaded beside the old instance
    bool changed = false;
  };

  // One line for the whole config: which device auto / all came to, and why.
  static void log_auto_choice(const ResidencyConfig& config) {
    std::string users;
    for (const auto& spec : config.models)
      if (std::find(spec.devices.begin(), spec.devices.end(), "auto") != spec.devices.end() ||
          std::find(spec.devices.begin(), spec.devices.end(), "all") != spec.devices.end())
        users += (users.empty() ? "" : ", ") + spec.name;
    if (users.empty()) return;
    const auto choice = auto_device();
    spdlog::info("models: device auto is {} ({}); used by {}", choice.device, choice.reason, users);
  }

  std::map<std::string, std::shared_ptr<DeviceOwner>> owners() const {
    const std::lock_guard lock(mutex_);
    return owners_;
  }

  // Under mutex_ (or in the constructor): the owner of a device, created on first use.
  std::shared_ptr<DeviceOwner> owner_for(const std::string& device) {
    auto& owner = owners_[device];
    if (!owner) {
      owner = std::make_shared<DeviceOwner>(device, settings_of(config_));
      owner->start();
    }
    return owner;
  }

  void place(const ModelSpec& spec) {
    const auto devices = replica_devices(spec);
    for (const auto& device : devices) owner_for(device)->add(spec);
    devices_of_[spec.name] = devices;
  }

  std::vector<std::shared_ptr<DeviceOwner>> owners_of(const std::string& name) const {
    const std::lock_guard lock(mutex_);
    const auto it = devices_of_.find(name);
    if (it == devices_of_.end()) throw Error(ErrorCode::not_found, "no model named '" + name + "' is configured");
    std::vector<std::shared_ptr<DeviceOwner>> found;
    for (const auto& device : it->second) found.push_back(owners_.at(device));
    return found;
  }

  std::shared_ptr<ModelLease> acquire(const std::string& requested, ModelRole wanted, const std::string& device,
                                      const LoadingCallback& on_loading) {
    std::shared_ptr<DeviceOwner> owner;
    std::string name;
    {
      const std::lock_guard lock(mutex_);
      name = !requested.empty()                    ? requested
             : wanted == ModelRole::generator ? config_.default_generator
             : wanted == ModelRole::detector  ? config_.default_detector
                                              : default_restorer(config_);
      const std::string role = to_string(wanted);
      if (name.empty() && wanted == ModelRole::restorer) {
        std::string gfpgans;
        for (const auto& spec : config_.models)
          if (spec.kind == ModelKind::gfpgan) gfpgans += (gfpgans.empty() ? "" : ", ") + spec.name;
        if (!gfpgans.empty())
          throw Error(ErrorCode::invalid_argument, "--enhance: several gfpgan models are configured (" + gfpgans +
                                                       "); name one in models.default_restorer");
        throw Error(ErrorCode::invalid_argument, std::string(restorer_missing_message()));
      }
      if (name.empty()) throw Error(ErrorCode::not_found, "no default " + role + " is configured");
      const ModelSpec* spec = find_spec(config_, name);
      if (!spec) throw Error(ErrorCode::not_found, "no " + role + " named '" + name + "' is configured");
      if (role_of(spec->kind) != wanted)
        throw Error(ErrorCode::invalid_argument, "model '" + name + "' is a " + to_string(spec->kind) + ", not a " + role);
      const auto& devices = devices_of_.at(name);
      std::string replica = devices.front();
      if (!device.empty()) {
        replica = models::replica_text(device);
        if (std::find(devices.begin(), devices.end(), replica) == devices.end())
          throw Error(ErrorCode::not_found, "model '" + name + "' has no replica on " + replica);
      }
      owner = owners_.at(replica);
    }
    return owner->acquire(name, on_loading);
  }

  // Phase 1 of a reload for one replica: load what changed beside the old instance (may throw).
  Change plan(const ModelSpec& spec, const std::string& device) {
    Change change{spec, nullptr, false, nullptr, false};
    std::optional<ModelSpec> old;
    {
      const std::lock_guard lock(mutex_);
      change.owner = owner_for(device);
      if (const ModelSpec* current = find_spec(config_, spec.name)) {
        old = *current;
        const auto& devices = devices_of_.at(spec.name);
        change.existed = std::find(devices.begin(), devices.end(), device) != devices.end();
      }
    }
    change.changed = !change.existed || !same_spec(*old, spec) || change.owner->weights_changed(spec.name);
    if (!change.changed) return change;
    const bool needed_resident = spec.preload || (change.existed && change.owner->resident(spec.name));
    if (needed_resident)
      change.staged = change.owner->stage(spec);
    else
      check_weights_readable(spec);
    return change;
  }

  // Phase 2: swap everything in (new acquires see the new instances; leases keep the old ones).
  void apply(const ResidencyConfig& config, std::vector<Change>& changes) {
    const std::lock_guard lock(mutex_);
    std::size_t changed = 0, removed = 0;
    std::map<std::string, std::vector<std::string>> devices_of;
    for (const auto& change : changes) devices_of[change.spec.name].push_back(change.owner->device());
    for (const auto& old : config_.models) {
      const auto& now = devices_of[old.name];
      for (const auto& device : devices_of_.at(old.name))
        if (std::find(now.begin(), now.end(), device) == now.end()) {
          owners_.at(device)->remove(old.name);
          ++removed;
        }
    }
    for (auto& change : changes) {
      if (!change.changed) continue;
      change.owner->install(change.spec, std::move(change.staged));
      ++changed;
    }
    for (auto it = devices_of.begin(); it != devices_of.end();)
      it = it->second.empty() ? devices_of.erase(it) : std::next(it);
    devices_of_ = std::move(devices_of);
    config_ = config;
    for (auto& [device, owner] : owners_) owner->update_settings(settings_of(config_));
    log_auto_choice(config_);
    spdlog::info("reload: {} replica(s) added or changed, {} removed, {} unchanged", changed, removed,
                 changes.size() - changed);
  }

  mutable std::mutex mutex_;  // config_, devices_of_, owners_
  ResidencyConfig config_;
  std::map<std::string, std::vector<std::string>> devices_of_;  // model -> its replicas' devices
  std::map<std::string, std::shared_ptr<DeviceOwner>> owners_;
  std::mutex reload_mutex_;  // one reload at a time
};

}  // namespace

std::unique_ptr<ModelRegistry> make_model_registry(const ResidencyConfig& config) {
  return std::make_unique<Registry>(config);
}

}  // namespace heygem::residency
