#pragma once
// Model residency (issue 5): the registry of configured models and the one owner thread per device
// that loads, warms, unloads and heart-beats them (llama.cpp-server style). Jobs never load a
// model themselves: they acquire a lease, which keeps the instance resident while held.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "daemon/models/placement.hpp"

namespace heygem::models {
class Wav2LipGenerator;
class FaceDetector;
}  // namespace heygem::models

namespace heygem::residency {

enum class ModelKind { wav2lip, s3fd, retinaface };

// One `models:` entry of the config.
struct ModelSpec {
  std::string name;                   // "wav2lip_gan", "retinaface", ...
  ModelKind kind = ModelKind::wav2lip;
  std::filesystem::path weights;      // empty for kind wav2lip = the hash-init "untrained" generator
  std::string device = "cpu";         // "cpu", "cuda", "cuda:1"
  std::string precision = "float32";
  bool preload = true;
  std::optional<std::chrono::milliseconds> keep_alive;  // nullopt = forever; 0 = unload when idle
};

struct ResidencyConfig {
  std::vector<ModelSpec> models;
  std::string default_generator;      // names into `models`
  std::string default_detector;
  std::chrono::milliseconds heartbeat_interval{300'000};
  std::optional<std::uint64_t> memory_budget_bytes;  // per device; nullopt = unlimited
};

// What `heygemctl models` shows (one row per configured model).
struct ModelStatus {
  std::string name, kind, device, precision, state;  // state: unloaded|loading|warm|busy|unhealthy
  std::uint64_t resident_bytes = 0;
  int leases = 0;
  double load_seconds = 0, warmup_seconds = 0;
  double last_heartbeat_ms = -1;      // latency of the last heartbeat inference, -1 = none yet
  std::optional<std::chrono::system_clock::time_point> expires_at;  // keep_alive deadline when idle
  std::uint64_t generation = 0;       // bumps on every (re)load / hot reload
};

// A held model instance. While any lease exists the instance is never unloaded; a hot reload swaps
// in a new instance for later acquires only.
class ModelLease {
 public:
  virtual ~ModelLease() = default;
  virtual const models::Wav2LipGenerator* generator() const = 0;  // kind wav2lip, else nullptr
  virtual const models::FaceDetector* detector() const = 0;       // kind s3fd / retinaface, else nullptr
  virtual const std::string& name() const = 0;
};

class ModelRegistry {
 public:
  virtual ~ModelRegistry() = default;
  // Loads and warms every preload model; returns when all are warm (READY=1 comes after this).
  // Throws heygem::Error naming the model and cause if one cannot be loaded.
  virtual void start() = 0;
  virtual void stop() = 0;
  // Blocks until the named model (empty = the default of that role) is resident and healthy, loading
  // it if needed (concurrent acquirers share one load). `on_loading` is called once if a load is
  // needed, so the job can show a "loading model" stage. Throws heygem::Error(not_found /
  // resource / invalid_input) with a message that says why.
  virtual std::shared_ptr<ModelLease> acquire_generator(const std::string& name,
                                                        const std::function<void()>& on_loading) = 0;
  virtual std::shared_ptr<ModelLease> acquire_detector(const std::string& name,
                                                       const std::function<void()>& on_loading) = 0;
  // Hot reload: validate and load changed models beside the old ones, then swap atomically.
  // On any error nothing changes and the error is thrown (heygem::Error naming the cause).
  virtual void reload(const ResidencyConfig& config) = 0;
  virtual std::vector<ModelStatus> status() const = 0;
  virtual bool healthy() const = 0;
  // Tells the registry a job runs on `device` now (heartbeats are skipped while busy).
  virtual void set_device_busy(const std::string& device, bool busy) = 0;
};

std::unique_ptr<ModelRegistry> make_model_registry(const ResidencyConfig& config);

}  // namespace heygem::residency
