#include "daemon/jobs/item_executor.hpp"

#include <algorithm>

#include "common/errors.hpp"
#include "daemon/models/face_detector.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/avatar_cache.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "daemon/residency/resident_model.hpp"
#include "daemon/system/heap_memory.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::jobs {
namespace {

bool is_generator(const residency::ModelSpec& spec) { return spec.kind == residency::ModelKind::wav2lip; }
bool is_detector(const residency::ModelSpec& spec) { return residency::is_detector(spec.kind); }

// --enhance / --no-enhance, else the daemon's default (which fixed-box jobs, lacking landmarks, skip).
bool enhance_wanted(const pipeline::ItemOptions& options, bool default_enhance) {
  return options.enhance.value_or(default_enhance && !options.box);
}

std::string names_of(const std::vector<residency::ModelSpec>& models, bool generators) {
  std::string out;
  for (const auto& spec : models)
    if (generators ? is_generator(spec) : is_detector(spec)) out += (out.empty() ? "" : ", ") + spec.name;
  return out.empty() ? "none" : out;
}

// A job's options as the one typed model (the stored JSON is its serialization, read by the same
// validator that admitted it; keys of a newer heygemd are ignored).
protocol::SubmitOptions options_of(const Job& job) { return protocol::stored_submit_options(job.options); }

// For placing a job: its options, or the defaults when its record's options cannot be read (the job
// then fails with the cause when it runs).
protocol::SubmitOptions placement_options_of(const Job& job) {
  try {
    return options_of(job);
  } catch (const std::exception&) {
    return {};
  }
}

// What the avatar cache keys a detector on besides its kind and placement: its weights file.
struct AvatarCaching {
  std::shared_ptr<const pipeline::AvatarCache> cache;  // null = none
  std::filesystem::path detector_weights;
};

class LipSyncJobRun : public JobRun {
 public:
  // `devices`: the generator's replica first, then the detector's when it is elsewhere;
  // `restorer_device`: the face restorer's when the job restores faces ("" otherwise).
  LipSyncJobRun(residency::ModelRegistry& registry, const Job& job, const Spool& spool, RunControl control,
                pipeline::ItemOptions options, const std::vector<std::string>& devices,
                const std::string& restorer_device, AvatarCaching caching, bool default_enhance, int items_at_once)
      : job_(job), spool_(spool), control_(std::move(control)), options_(std::move(options)),
        avatar_cache_(std::move(caching.cache)) {
    options_.items_at_once = items_at_once;
    // Busy before the models are acquired: a lazy model's load and warm-up are part of the job, and
    // no heartbeat may run beside them or beside the first batches. Each device once.
    std::vector<std::string> busy = devices;
    if (!restorer_device.empty() && std::find(busy.begin(), busy.end(), restorer_device) == busy.end())
      busy.push_back(restorer_device);
    for (const auto& device : busy) busy_.push_back(std::make_unique<residency::BusyDevice>(registry, device));
    // The registry names the model it loads: the configured one, also for a default.
    const auto on_loading = [this](const std::string& model) {
      const system::ScopedLogFields fields({job_.id, model, "loading"});
      control_.loading_model(model);
    };
    generator_ = registry.acquire_generator(options_.generator, devices.front(), on_loading);
    if (!generator_ || !generator_->generator())
      throw Error(ErrorCode::internal, "the registry returned no generator for \"" + options_.generator + "\"");
    if (!options_.box) {
      detector_ = registry.acquire_detector(options_.detector, devices.back(), on_loading);
      if (!detector_ || !detector_->detector())
        throw Error(ErrorCode::internal, "the registry returned no detector for \"" + options_.detector + "\"");
    }
    if (enhance_wanted(options_, default_enhance)) {
      restorer_ = registry.acquire_restorer("", on_loading);
      if (!restorer_ || !restorer_->restorer()) throw Error(ErrorCode::internal, "the registry returned no face restorer");
    }
    // Entries are per uid: a hit must not tell one user that another rendered the same video.
    if (detector_ && avatar_cache_)
      detector_identity_ = detector_identity(caching.detector_weights) + "; uid " + std::to_string(job.owner);
    control_.log("models: generator " + generator_->name() + (detector_ ? ", detector " + detector_->name() : ", fixed box") +
                 (restorer_ ? ", restorer " + restorer_->name() : ""));
  }

  std::string model_name() const override { return generator_->name(); }

  ItemOutcome run_item(std::size_t item, const std::filesystem::path& output) override {
    pipeline::ItemFiles files;
    files.audio = spool_.audio_path(job_.id);
    files.video = spool_.video_path(job_.id, item);
    files.output = output;
    files.scratch = spool_.scratch_dir(job_.id);
    pipeline::ItemModels models;
    models.generator = generator_->generator();
    // The pipeline only calls the detector's const detect(); the lease hands out a const view.
    models.detector = detector_ ? detector_->detector() : nullptr;
    models.generator_name = generator_->name();
    models.detector_name = detector_ ? detector_->name() : "";
    models.avatar_cache = detector_identity_.empty() ? nullptr : avatar_cache_.get();
    models.detector_identity = detector_identity_;
    // Every forward runs on its device's queue, batched with the other running items'.
    models.generator_forwards = &generator_->forwards();
    models.detector_forwards = detector_ ? &detector_->forwards() : nullptr;
    models.restorer = restorer_ ? restorer_->restorer() : nullptr;
    models.restorer_forwards = restorer_ ? &restorer_->forwards() : nullptr;
    models.restorer_name = restorer_ ? restorer_->name() : "";
    pipeline::RunHooks hooks;
    hooks.progress = [this](const pipeline::ItemProgress& p) {
      control_.progress({p.stage, p.frames_done, p.frames_total, p.fps, p.eta_seconds});
    };
    hooks.cancelled = control_.cancelled;
    const system::ScopedLogFields fields({job_.id, generator_->name(), ""});
    struct ReleaseMemoryAtEnd {
      ~ReleaseMemoryAtEnd() { system::release_free_heap_memory(); }
    } release_memory_at_end;  // success or failure: the item's frames go back to the system
    try {
      const auto report = pipeline::run_lip_sync(files, options_, models, hooks);
      const auto* detect = report.stage("detect");
      const double speed = report.wall_seconds > 0 ? static_cast<double>(report.frames) / report.wall_seconds : 0.0;
      return {report.frames,
              report.frames_without_face,
              report.wall_seconds,
              speed,
              report.avatar_cache,
              detect ? detect->busy_seconds : 0.0,
              report.fps,
              report.frames_gated};
    } catch (const Error& e) {
      // The spool's file names mean nothing to the client: speak of its own names.
      std::string message = e.what();
      replace_all(message, files.video.string(), "video " + job_.items[item].video_name);
      replace_all(message, files.audio.string(), "audio " + job_.audio_name);
      throw Error(e.code(), message);
    }
  }

 private:
  // "" when the weights cannot be described: then the items of this run detect without the cache.
  std::string detector_identity(const std::filesystem::path& weights) const {
    const auto* detector = detector_->detector();
    try {
      return detector->kind() + " " + models::to_string(detector->placement()) + " " +
             pipeline::weights_identity(weights);
    } catch (const Error& e) {
      if (control_.log) control_.log("avatar cache not used: " + std::string(e.what()));
      return "";
    }
  }

  static void replace_all(std::string& text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
  }

  Job job_;
  const Spool& spool_;
  RunControl control_;
  pipeline::ItemOptions options_;
  std::shared_ptr<residency::ModelLease> generator_, detector_, restorer_;
  std::shared_ptr<const pipeline::AvatarCache> avatar_cache_;
  std::string detector_identity_;
  std::vector<std::unique_ptr<residency::BusyDevice>> busy_;
};

}  // namespace

ItemExecutor::ItemExecutor(residency::ModelRegistry& registry, residency::ResidencyConfig config)
    : registry_(registry), config_(std::move(config)) {}

void ItemExecutor::update_config(residency::ResidencyConfig config) {
  std::lock_guard lock(mutex_);
  config_ = std::move(config);
}

const residency::ModelSpec* ItemExecutor::find(const std::string& name) const {
  for (const auto& spec : config_.models)
    if (spec.name == name) return &spec;
  return nullptr;
}

const residency::ModelSpec* ItemExecutor::restorer_spec() const {
  if (!config_.default_restorer.empty()) return find(config_.default_restorer);
  const residency::ModelSpec* only = nullptr;
  for (const auto& spec : config_.models) {
    if (spec.kind != residency::ModelKind::gfpgan) continue;
    if (only) return nullptr;  // several and no default: the registry refuses, naming them
    only = &spec;
  }
  return only;
}

std::vector<std::string> ItemExecutor::devices() const {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  for (const auto& spec : config_.models)
    if (is_generator(spec))
      for (const auto& device : registry_.replicas(spec.name, true))
        if (std::find(out.begin(), out.end(), device) == out.end()) out.push_back(device);
  if (out.empty()) out.push_back("cpu");
  return out;
}

std::vector<std::string> ItemExecutor::devices_for(const Job& job) const {
  const auto options = placement_options_of(job);
  const auto generators = registry_.replicas(options.generator.value_or(""), true);
  if (options.box) return generators;
  const auto detectors = registry_.replicas(options.detector.value_or(""), false);
  std::vector<std::string> both;
  for (const auto& device : generators)
    if (std::find(detectors.begin(), detectors.end(), device) != detectors.end()) both.push_back(device);
  return both.empty() ? generators : both;
}

void ItemExecutor::validate(const protocol::SubmitOptions& options) const {
  const auto parsed = pipeline::item_options_for(options);
  std::lock_guard lock(mutex_);
  const auto check = [&](const std::string& name, bool generator) {
    if (name.empty()) return;
    const auto* spec = find(name);
    if (!spec || is_generator(*spec) != generator)
      throw Error(ErrorCode::invalid_argument, std::string("option ") + (generator ? "generator" : "detector") +
                                            ": no " + (generator ? "generator" : "face detector") + " model named \"" +
                                            name + "\" (configured: " + names_of(config_.models, generator) + ")");
  };
  check(parsed.generator, true);
  check(parsed.detector, false);
  // A model the job would take by default must exist: refused here, not when the job runs (a cluster
  // job would otherwise fail every attempt before its dead letter says why).
  if (parsed.generator.empty() && config_.default_generator.empty())
    throw Error(ErrorCode::invalid_argument,
                "option generator: none given and no default generator is configured (models.default_generator)");
  if (!parsed.box && parsed.detector.empty() && config_.default_detector.empty())
    throw Error(ErrorCode::invalid_argument,
                "option box: faces must be found, but no face detector is given and none is configured "
                "(models.default_detector is \"\"): give a fixed box or name a detector");
  // --enhance without GFPGAN weights is refused at submit time, naming the file to bring.
  if (enhance_wanted(parsed, config_.default_enhance) &&
      std::none_of(config_.models.begin(), config_.models.end(),
                   [](const residency::ModelSpec& spec) { return spec.kind == residency::ModelKind::gfpgan; }))
    throw Error(ErrorCode::invalid_argument, std::string(residency::restorer_missing_message()));
  if (enhance_wanted(parsed, config_.default_enhance) && parsed.box)
    throw Error(ErrorCode::invalid_argument,
                "option enhance: faces are aligned by the 5 landmarks of the RetinaFace detector, which a fixed box "
                "job does not run (drop the box, or enhance)");
}

void ItemExecutor::set_avatar_cache(std::shared_ptr<const pipeline::AvatarCache> cache) {
  std::lock_guard lock(mutex_);
  avatar_cache_ = std::move(cache);
}

void ItemExecutor::set_items_at_once(int items) {
  std::lock_guard lock(mutex_);
  items_at_once_ = std::max(1, items);
}

std::unique_ptr<JobRun> ItemExecutor::start(const Job& job, const Spool& spool, const RunControl& control,
                                            const std::string& device) {
  AvatarCaching caching;
  // Throws naming the cause when the record's options cannot be read: the job fails with it.
  const auto options = options_of(job);
  auto item_options = pipeline::item_options_for(options);
  // The scheduler's devices are those of the start; after a reload that moved the generator
  // elsewhere, the job runs on the generator's first replica rather than fail on a missing one.
  const auto generators = registry_.replicas(options.generator.value_or(""), true);
  const bool generator_here = std::find(generators.begin(), generators.end(), device) != generators.end();
  std::vector<std::string> devices{generator_here || generators.empty() ? device : generators.front()};
  int items_at_once = 1;
  bool default_enhance = false;
  std::string restorer;
  {
    std::lock_guard lock(mutex_);
    caching.cache = avatar_cache_;
    items_at_once = items_at_once_;
    default_enhance = config_.default_enhance;
    const auto named = options.detector.value_or("");
    if (const auto* spec = find(named.empty() ? config_.default_detector : named)) caching.detector_weights = spec->weights;
    if (enhance_wanted(item_options, default_enhance))
      if (const auto* spec = restorer_spec()) restorer = spec->name;
  }
  if (!options.box) {
    // The detector's replica on this device, else its first one.
    const auto detectors = registry_.replicas(options.detector.value_or(""), false);
    if (!detectors.empty() && std::find(detectors.begin(), detectors.end(), devices.front()) == detectors.end())
      devices.push_back(detectors.front());
  }
  // The restorer runs on its first replica (ModelRegistry::acquire_restorer).
  std::string restorer_device;
  if (!restorer.empty())
    if (const auto replicas = registry_.replicas(restorer, false); !replicas.empty()) restorer_device = replicas.front();
  return std::make_unique<LipSyncJobRun>(registry_, job, spool, control, std::move(item_options), devices,
                                         restorer_device, std::move(caching), default_enhance, items_at_once);
}

}  // namespace heygem::jobs
