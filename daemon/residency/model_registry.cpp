#include "daemon/residency/model_registry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "common/errors.hpp"
#include "daemon/residency/device_owner.hpp"
#include "daemon/residency/resident_model.hpp"

namespace heygem::residency {
namespace {

// "cuda" and "cuda:0" are one device: owners are keyed by the canonical text.
std::string canonical_device(const ModelSpec& spec) {
  try {
    return models::device_text(models::parse_placement(spec.device, spec.precision).device);
  } catch (const Error& error) {
    throw Error(error.code(), "model " + spec.name + ": " + error.what());
  }
}

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
    try {
      canonical_device(spec);
    } catch (const Error& error) {
      throw Error(ErrorCode::invalid_argument, origin_prefix(spec) + error.what());
    }
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
  }
  ~Registry() override { stop(); }

  void start() override {
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::pair<std::string, std::shared_future<void>>> loads;
    {
      const std::lock_guard lock(mutex_);
      for (const auto& spec : config_.models)
        if (spec.preload) loads.emplace_back(spec.name, owners_.at(device_of_.at(spec.name))->request_load(spec.name));
    }
    for (auto& [name, load] : loads) load.get();  // throws the load's own error, which names the model
    spdlog::info("residency: {} preload model(s) warm in {:.2f} s", loads.size(),
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

  std::shared_ptr<ModelLease> acquire_generator(const std::string& name, const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::generator, on_loading);
  }
  std::shared_ptr<ModelLease> acquire_detector(const std::string& name, const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::detector, on_loading);
  }
  std::shared_ptr<ModelLease> acquire_restorer(const std::string& name, const LoadingCallback& on_loading) override {
    return acquire(name, ModelRole::restorer, on_loading);
  }

  void load(const std::string& name) override { owner_of(name)->request_load(name).get(); }

  std::size_t unload(const std::string& name) override {
    if (!name.empty()) return owner_of(name)->unload(name);
    std::size_t count = 0;
    for (auto& [device, owner] : owners()) count += owner->unload("");
    return count;
  }

  void reload(const ResidencyConfig& config) override {
    const std::lock_guard reloading(reload_mutex_);
    validate(config);
    std::vector<Change> changes;
    try {
      for (const auto& spec : config.models) changes.push_back(plan(spec));
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
    std::map<std::string, ModelStatus> by_name;
    for (auto& [device, owner] : owners())
      for (auto& row : owner->status()) by_name[row.name] = std::move(row);
    std::vector<ModelStatus> rows;
    const std::lock_guard lock(mutex_);
    for (const auto& spec : config_.models)
      if (auto it = by_name.find(spec.name); it != by_name.end()) rows.push_back(std::move(it->second));
    return rows;
  }

  bool healthy() const override {
    const auto all = owners();
    return std::all_of(all.begin(), all.end(), [](const auto& entry) { return entry.second->healthy(); });
  }

  void set_device_busy(const std::string& device, bool busy) override {
    std::string canonical;
    try {
      canonical = models::device_text(models::parse_placement(device, "float32").device);
    } catch (const Error&) {
      return;  // a device with no models cannot be heart-beaten anyway
    }
    const std::lock_guard lock(mutex_);
    if (const auto it = owners_.find(canonical); it != owners_.end()) it->second->set_busy(busy);
  }

 private:
  struct Change {
    ModelSpec spec;
    std::shared_ptr<DeviceOwner> owner;      // where the model lives after the reload
    std::shared_ptr<DeviceOwner> old_owner;  // where it lives now (nullptr: new model)
    std::shared_ptr<LoadedModel> staged;     // replacement loaded beside the old instance
    bool changed = false;
  };

  std::map<std::string, std::shared_ptr<DeviceOwner>> owners() const {
    const std::lock_guard lock(mutex_);
    return owners_;
  }

  // Under mutex_ (or in the constructor): the owner of the spec's device, created on first use.
  std::shared_ptr<DeviceOwner> owner_for(const ModelSpec& spec) {
    const auto device = canonical_device(spec);
    auto& owner = owners_[device];
    if (!owner) {
      owner = std::make_shared<DeviceOwner>(device, settings_of(config_));
      owner->start();
    }
    return owner;
  }

  void place(const ModelSpec& spec) {
    auto owner = owner_for(spec);
    owner->add(spec);
    device_of_[spec.name] = owner->device();
  }

  std::shared_ptr<DeviceOwner> owner_of(const std::string& name) const {
    const std::lock_guard lock(mutex_);
    const auto it = device_of_.find(name);
    if (it == device_of_.end()) throw Error(ErrorCode::not_found, "no model named '" + name + "' is configured");
    return owners_.at(it->second);
  }

  std::shared_ptr<ModelLease> acquire(const std::string& requested, ModelRole wanted, const LoadingCallback& on_loading) {
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
      owner = owners_.at(device_of_.at(name));
    }
    return owner->acquire(name, on_loading);
  }

  // Phase 1 of a reload for one model: load what changed beside the old instance (may throw).
  Change plan(const ModelSpec& spec) {
    Change change{spec, nullptr, nullptr, nullptr, false};
    std::optional<ModelSpec> old;
    {
      const std::lock_guard lock(mutex_);
      change.owner = owner_for(spec);
      if (const ModelSpec* current = find_spec(config_, spec.name)) {
        old = *current;
        change.old_owner = owners_.at(device_of_.at(spec.name));
      }
    }
    change.changed = !old || !same_spec(*old, spec) || change.old_owner->weights_changed(spec.name);
    if (!change.changed) return change;
    const bool needed_resident = spec.preload || (change.old_owner && change.old_owner->resident(spec.name));
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
    for (const auto& old : config_.models) {
      if (find_spec(config, old.name)) continue;
      owners_.at(device_of_.at(old.name))->remove(old.name);
      device_of_.erase(old.name);
      ++removed;
    }
    for (auto& change : changes) {
      if (!change.changed) continue;
      if (change.old_owner && change.old_owner != change.owner) change.old_owner->remove(change.spec.name);
      change.owner->install(change.spec, std::move(change.staged));
      device_of_[change.spec.name] = change.owner->device();
      ++changed;
    }
    config_ = config;
    for (auto& [device, owner] : owners_) owner->update_settings(settings_of(config_));
    spdlog::info("reload: {} model(s) added or changed, {} removed, {} unchanged", changed, removed,
                 config.models.size() - changed);
  }

  mutable std::mutex mutex_;  // config_, device_of_, owners_
  ResidencyConfig config_;
  std::map<std::string, std::string> device_of_;
  std::map<std::string, std::shared_ptr<DeviceOwner>> owners_;
  std::mutex reload_mutex_;  // one reload at a time
};

}  // namespace

std::unique_ptr<ModelRegistry> make_model_registry(const ResidencyConfig& config) {
  return std::make_unique<Registry>(config);
}

}  // namespace heygem::residency
