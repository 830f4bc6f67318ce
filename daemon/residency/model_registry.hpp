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
#include <utility>
#include <vector>

#include "daemon/models/placement.hpp"

namespace heygem::models {
class Wav2LipGenerator;
class FaceDetector;
class GfpganRestorer;
}  // namespace heygem::models

namespace heygem::residency {

class ForwardQueue;

enum class ModelKind { wav2lip, s3fd, retinaface, gfpgan };

// What a model does in a job: generate the mouth, find the faces, or restore the faces (--enhance).
enum class ModelRole { generator, detector, restorer };

// One `models:` entry of the config.
struct ModelSpec {
  std::string name;                   // "wav2lip_gan", "retinaface", ...
  ModelKind kind = ModelKind::wav2lip;
  std::filesystem::path weights;      // empty for kind wav2lip = the hash-init "untrained" generator;
                                      // kind gfpgan needs GFPGANv1.4.pth (params_ema is loaded)
  // Where its replicas run, as written (models.device when the entry names none): {"auto"} = cuda:0
  // when this build and machine have a GPU, else cpu; {"all"} = every CUDA device, else cpu; or
  // devices "cpu", "cpu:N", "cuda:N", one resident replica each (replica_devices resolves them).
  std::vector<std::string> devices{"auto"};
  std::string precision = "float32";
  bool preload = true;
  std::optional<std::chrono::milliseconds> keep_alive;  // nullopt = forever; 0 = unload when idle
  std::string origin;                 // where the entry was written ("heygemd.yaml: line 12: models.entries[0]")
};

// The shapes of the warm-up passes, i.e. the pipeline's: 0 = the device default batch (generator
// 16 on CPU / 128 on GPU, detector 4 / 32, as pipeline::ItemOptions). Frames are height x width.
struct WarmupShapes {
  int generator_batch = 0;
  int detector_batch = 0;
  int restorer_batch = 0;             // 0 = 1 on CPU, 8 on GPU (pipeline::restore_faces)
  int frame_height = 720;
  int frame_width = 1280;
  int passes = 2;
};

// How a device's forward queue (forward_queue.hpp) coalesces the tasks of concurrent items.
struct BatchingSettings {
  // The longest the oldest task of a batch waits for another item's tasks to join it. Only spent
  // when another item has fed the same model lately: a lone item never waits.
  std::chrono::microseconds max_wait{2000};
  // Rows (faces, frames) per coalesced forward; a single task with more rows runs alone, whole.
  std::int64_t max_rows = 512;
};

struct ResidencyConfig {
  std::vector<ModelSpec> models;
  std::string default_generator;      // names into `models`
  std::string default_detector;
  std::string default_restorer;       // the gfpgan model --enhance uses; "" = the only gfpgan entry, if any
  bool default_enhance = false;       // jobs that do not say --enhance / --no-enhance restore faces
  std::chrono::milliseconds heartbeat_interval{300'000};
  std::optional<std::uint64_t> memory_budget_bytes;  // per device; nullopt = unlimited
  WarmupShapes warmup;
  BatchingSettings batching;
  // models.warm_pipeline: before READY (and after a reload that changes them) heygemd renders one
  // short synthetic item per device with a preloaded generator through the whole pipeline (decode,
  // generate, paste, encode), so that the first job pays no one-time costs (jobs/pipeline_warmup.hpp).
  // Read by the daemon, not the registry.
  bool warm_pipeline = true;
};

// What `heygemctl models` shows (one row per replica of each configured model).
struct ModelStatus {
  // state: unloaded | loading | warm (resident, idle) | busy (leased) | unhealthy
  std::string name, kind, device, precision, state;
  std::uint64_t resident_bytes = 0;
  int leases = 0;
  double load_seconds = 0, warmup_seconds = 0;
  double last_heartbeat_ms = -1;      // latency of the last heartbeat inference, -1 = none yet
  std::optional<std::chrono::system_clock::time_point> expires_at;  // keep_alive deadline when idle
  std::uint64_t generation = 0;       // bumps on every (re)load / hot reload
  bool untrained = false;             // the hash-init generator: output is not a real lip-sync
  std::string source;                 // weights file, or "untrained wav2lip (hash-init seed 1)"
  std::string error;                  // why the model is unhealthy / why its last load failed
  std::optional<std::chrono::system_clock::time_point> loaded_at;          // LOADED FOR
  std::optional<std::chrono::system_clock::time_point> last_heartbeat_at;
  std::uint64_t heartbeats = 0;       // heartbeat inferences run on the current instance
  std::optional<std::chrono::milliseconds> keep_alive;  // configured; nullopt = forever
};

// A held model instance. While any lease exists the instance is never unloaded; a hot reload swaps
// in a new instance for later acquires only.
class ModelLease {
 public:
  virtual ~ModelLease() = default;
  virtual const models::Wav2LipGenerator* generator() const = 0;  // kind wav2lip, else nullptr
  virtual const models::FaceDetector* detector() const = 0;       // kind s3fd / retinaface, else nullptr
  virtual const models::GfpganRestorer* restorer() const { return nullptr; }  // kind gfpgan, else nullptr
  virtual const std::string& name() const = 0;
  // The queue of the instance's device: every forward of it runs there (never on the caller's thread).
  virtual ForwardQueue& forwards() const = 0;
};

// Told the name of the model a caller waits for when that model must be loaded first (the job's
// "loading_model" stage); the name is the configured one, also when the caller asked for a default.
using LoadingCallback = std::function<void(const std::string& model)>;

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
  // `device` picks the replica ("" = the model's first).
  virtual std::shared_ptr<ModelLease> acquire_generator(const std::string& name, const std::string& device,
                                                        const LoadingCallback& on_loading) = 0;
  virtual std::shared_ptr<ModelLease> acquire_detector(const std::string& name, const std::string& device,
                                                       const LoadingCallback& on_loading) = 0;
  // The face restorer for --enhance. Throws heygem::Error(invalid_argument) naming the weights file
  // to bring when no gfpgan model is configured.
  virtual std::shared_ptr<ModelLease> acquire_restorer(const std::string& name, const LoadingCallback& on_loading) = 0;
  std::shared_ptr<ModelLease> acquire_generator(const std::string& name, const LoadingCallback& on_loading) {
    return acquire_generator(name, "", on_loading);
  }
  std::shared_ptr<ModelLease> acquire_detector(const std::string& name, const LoadingCallback& on_loading) {
    return acquire_detector(name, "", on_loading);
  }
  // The devices the named model (empty = the default generator / detector) has replicas on, in
  // configured order; empty when there is no such model.
  virtual std::vector<std::string> replicas(const std::string& name, bool generator) const = 0;
  // Hot reload: validate and load changed models beside the old ones, then swap atomically.
  // On any error nothing changes and the error is thrown (heygem::Error naming the cause).
  virtual void reload(const ResidencyConfig& config) = 0;
  // `heygemctl models load NAME`: loads and warms every replica of the model now (blocking). Throws like acquire.
  virtual void load(const std::string& name) = 0;
  // `heygemctl models unload NAME|--all` (empty name = every model): unloads idle instances now and
  // returns how many. Throws heygem::Error(not_found) for an unknown name and Error(resource) when
  // the named model is in use (a model in use is never unloaded).
  virtual std::size_t unload(const std::string& name) = 0;
  virtual std::vector<ModelStatus> status() const = 0;
  virtual bool healthy() const = 0;
  // Tells the registry a job runs on `device` now (heartbeats are skipped while busy).
  virtual void set_device_busy(const std::string& device, bool busy) = 0;
};

// The devices an entry's replicas run on, canonical ("cpu", "cpu:1", "cuda:0"), each once. Throws
// heygem::Error(invalid_argument) naming the entry for a device this build or machine cannot run
// (a CPU-only build says so and how to build the GPU one).
std::vector<std::string> replica_devices(const ModelSpec& spec);
// What "auto" means on this build and machine, and why: "cpu (this heygemd is a CPU-only build ...)".
struct AutoDevice {
  std::string device;  // "cuda:0" or "cpu"
  std::string reason;
};
AutoDevice auto_device();

// The one validation of the models section, shared by --check-config, start and reload: unique
// names, defaults naming a generator / a detector, a weights file for each detector, devices and
// precisions this build and machine can run (a CPU-only build says so), and every weights file
// readable. Throws heygem::Error(invalid_argument) naming the entry's file and line (ModelSpec::origin).
void validate_config(const ResidencyConfig& config);

// Validates `config` (unique names, defaults naming a generator / a detector, parseable devices)
// and starts one owner thread per device; nothing is loaded before start(). Throws heygem::Error.
//
// Memory budget: before a load, the least-recently-used idle models of the device are unloaded
// until the new one fits. If it still does not fit because the rest is in use, the acquire FAILS
// at once with heygem::Error(resource) naming the sizes and the models in use (waiting could
// deadlock a job that holds one model and needs another).
std::unique_ptr<ModelRegistry> make_model_registry(const ResidencyConfig& config);

// Marks a device busy for the registry while a job or the pipeline warm-up runs on it (no heartbeat
// beside it).
class BusyDevice {
 public:
  BusyDevice(ModelRegistry& registry, std::string device) : registry_(registry), device_(std::move(device)) {
    registry_.set_device_busy(device_, true);
  }
  ~BusyDevice() { registry_.set_device_busy(device_, false); }
  BusyDevice(const BusyDevice&) = delete;
  BusyDevice& operator=(const BusyDevice&) = delete;

 private:
  ModelRegistry& registry_;
  std::string device_;
};

}  // namespace heygem::residency
