#include "daemon/jobs/pipeline_warmup.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <future>
#include <system_error>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "daemon/jobs/store.hpp"
#include "daemon/media/video_writer.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "daemon/residency/resident_model.hpp"
#include "daemon/system/heap_memory.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::jobs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kFps = 25;
constexpr int kAudioRate = 44100;
// The clip: speech-loud at first, then silent, so that the item meets every kind of frame a job has:
// generated, cross-faded next to a silence and passed through by the silence gate. On a GPU 1 s,
// 0.6 s of it spoken (the generator's batch cut into several warmed sizes); on the CPU a small
// picture and 8 frames of which only the first few reach the generator (about 0.4 s a row on a
// 2-core CI box), so that a CPU daemon's start pays a second or two for the item.
constexpr int kCpuWidth = 320, kCpuHeight = 240;
constexpr double kCpuSeconds = 0.32, kCpuSpokenShare = 0.25;
constexpr double kGpuSeconds = 1.0, kGpuSpokenShare = 0.6;

bool preloaded(const residency::ModelSpec& spec, bool generator) {
  if (!spec.preload) return false;
  return generator ? spec.kind == residency::ModelKind::wav2lip : residency::is_detector(spec.kind);
}

bool has_replica(const residency::ModelRegistry& registry, const std::string& name, const std::string& device) {
  const auto replicas = registry.replicas(name, true);
  return std::find(replicas.begin(), replicas.end(), device) != replicas.end();
}

// The default model of the role when it is preloaded on `device`, else the first preloaded one there.
std::string model_on(const residency::ResidencyConfig& config, const residency::ModelRegistry& registry,
                     const std::string& device, bool generator) {
  const auto& named = generator ? config.default_generator : config.default_detector;
  std::string first;
  for (const auto& spec : config.models) {
    if (!preloaded(spec, generator) || !has_replica(registry, spec.name, device)) continue;
    if (spec.name == named) return spec.name;
    if (first.empty()) first = spec.name;
  }
  return first;
}

// Whether the model's replica on `device` is loaded now (idle or leased). The warm-up never loads a
// model: one whose keep_alive expired (or that was unloaded, or is unhealthy) loads when a job needs it.
bool resident(const residency::ModelRegistry& registry, const std::string& name, const std::string& device) {
  for (const auto& row : registry.status())
    if (row.name == name && row.device == device) return row.state == "warm" || row.state == "busy";
  return false;
}

// "cuda:0" -> "cuda-0": a folder name.
std::string folder_name(std::string device) {
  std::replace(device.begin(), device.end(), ':', '-');
  return device;
}

void put_le(std::ofstream& out, std::uint32_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.put(static_cast<char>((value >> (8 * i)) & 0xff));
}

// A 16-bit mono WAV: `spoken` seconds of a few harmonics (speech-loud for the silence gate), then
// digital silence up to `seconds`.
void write_tone(const std::filesystem::path& file, double seconds, double spoken) {
  const auto samples = static_cast<std::uint32_t>(std::lround(seconds * kAudioRate));
  const auto loud = static_cast<std::uint32_t>(std::lround(spoken * kAudioRate));
  std::ofstream out(file, std::ios::binary);
  if (!out) throw Error(ErrorCode::resource, "cannot write " + file.string());
  out.write("RIFF", 4);
  put_le(out, 36 + samples * 2, 4);
  out.write("WAVEfmt ", 8);
  put_le(out, 16, 4);               // fmt chunk size
  put_le(out, 1, 2);                // PCM
  put_le(out, 1, 2);                // mono
  put_le(out, kAudioRate, 4);
  put_le(out, kAudioRate * 2, 4);   // bytes per second
  put_le(out, 2, 2);                // block align
  put_le(out, 16, 2);               // bits per sample
  out.write("data", 4);
  put_le(out, samples * 2, 4);
  constexpr double kPi = 3.14159265358979323846;
  for (std::uint32_t i = 0; i < samples; ++i) {
    const double t = static_cast<double>(i) / kAudioRate;
    double value = 0;
    if (i < loud)
      for (const double hz : {220.0, 450.0, 1100.0, 2300.0}) value += std::sin(2 * kPi * hz * t);
    put_le(out, static_cast<std::uint16_t>(static_cast<std::int16_t>(std::lround(value * 0.15 * 32767 / 4))), 2);
  }
  out.close();
  if (!out) throw Error(ErrorCode::resource, "cannot write " + file.string());
}

// `frames` frames of one plain picture at 25 fps, H.264 with the tone as its AAC track.
void write_clip(const std::filesystem::path& file, const std::filesystem::path& audio, int width, int height,
                int frames) {
  media::VideoWriterOptions options;
  options.width = width;
  options.height = height;
  options.fps = {kFps, 1};
  options.preset = "ultrafast";
  options.crf = 30;
  options.conversion_threads = 1;
  options.audio_source = audio;
  media::VideoWriter writer(file, options);
  media::Frame picture;
  picture.resize(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      std::uint8_t* pixel = picture.row(y) + 3 * x;
      pixel[0] = static_cast<std::uint8_t>(96 + (x * 64) / width);  // a gentle gradient: B, G, R
      pixel[1] = static_cast<std::uint8_t>(112 + (y * 64) / height);
      pixel[2] = 160;
    }
  for (int i = 0; i < frames; ++i) {
    media::Frame frame = picture;
    frame.index = frame.pts_index = i;
    writer.write(std::move(frame));
  }
  writer.finish();
}

PipelineWarmupResult warm_device(residency::ModelRegistry& registry, const residency::ResidencyConfig& config,
                                 const PipelineWarmupPlan& plan, const PipelineWarmupSettings& settings) {
  PipelineWarmupResult result;
  result.plan = plan;
  const auto started = Clock::now();
  const system::ScopedLogFields fields({"", plan.generator, ""});
  try {
    if (!resident(registry, plan.generator, plan.device)) {
      result.skipped = plan.generator + " is not loaded there (keep_alive expired, unloaded or unhealthy)";
      spdlog::info("pipeline warm-up on {} skipped: {}", plan.device, result.skipped);
      return result;
    }
    const residency::BusyDevice busy(registry, plan.device);
    // Resident: these return at once (should keep_alive expire just now, the acquire loads the model
    // again, as a job's would).
    const auto generator = registry.acquire_generator(plan.generator, plan.device, nullptr);
    if (!generator || !generator->generator())
      throw Error(ErrorCode::internal, "the registry returned no generator for \"" + plan.generator + "\"");
    std::shared_ptr<residency::ModelLease> detector;
    if (!plan.detector.empty() && resident(registry, plan.detector, plan.device))
      detector = registry.acquire_detector(plan.detector, plan.device, nullptr);
    const bool gpu = !generator->generator()->placement().device.is_cpu();

    int width = settings.width, height = settings.height;
    if (width <= 0 || height <= 0) {
      width = gpu ? config.warmup.frame_width : kCpuWidth;
      height = gpu ? config.warmup.frame_height : kCpuHeight;
    }
    width = std::max(32, width) & ~1;
    height = std::max(32, height) & ~1;
    const double seconds = settings.seconds > 0 ? settings.seconds : gpu ? kGpuSeconds : kCpuSeconds;
    const double spoken = seconds * (gpu ? kGpuSpokenShare : kCpuSpokenShare);
    const int frames = std::max(1, static_cast<int>(std::lround(seconds * kFps)));

    const auto folder = settings.folder / folder_name(plan.device);
    std::filesystem::create_directories(folder);
    const auto tone = folder / "tone.wav";
    const auto clip = folder / "clip.mp4";
    // A little more audio than pictures: the clip's AAC track is cut to its frames.
    write_tone(tone, static_cast<double>(frames) / kFps + 0.1, spoken);
    write_clip(clip, tone, width, height, frames);

    pipeline::ItemFiles files;
    files.audio = clip;  // its AAC track, as a job that gives a video for its audio
    files.video = clip;
    files.output = folder / "out.mp4";
    files.scratch = folder;
    pipeline::ItemOptions options;  // a default job's, with a fixed box in the middle
    const int side = std::max(16, std::min(width, height) / 3);
    options.box = pipeline::FaceBox{(height - side) / 2, (height + side) / 2, (width - side) / 2, (width + side) / 2};
    options.items_at_once = std::max(1, settings.items_at_once);
    pipeline::ItemModels models;
    models.generator = generator->generator();
    models.generator_name = generator->name();
    // Not called with a fixed box, but it decides the frame path as in a job (every model on one GPU).
    models.detector = detector ? detector->detector() : nullptr;
    models.detector_name = detector ? detector->name() : "";
    models.generator_forwards = &generator->forwards();
    models.detector_forwards = detector ? &detector->forwards() : nullptr;
    pipeline::RunHooks hooks;
    hooks.cancelled = settings.cancelled;
    struct ReleaseMemoryAtEnd {
      ~ReleaseMemoryAtEnd() { system::release_free_heap_memory(); }
    } release_memory_at_end;  // as after a job's item
    const auto report = pipeline::run_lip_sync(files, options, models, hooks);
    result.frames = report.frames;
    result.frames_gated = report.frames_gated;
    result.frame_path = report.frame_path;
    result.plan.detector = detector ? detector->name() : "";
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    spdlog::info("pipeline warm-up on {}: {:.2f} s ({} frames of {}x{}, {} passed through as silent, generator {}{}, "
                 "frames on {})",
                 plan.device, result.seconds, report.frames, report.width, report.height, report.frames_gated,
                 generator->name(),
                 detector ? ", detector " + detector->name() : std::string(), report.frame_path);
  } catch (const std::exception& e) {
    result.error = e.what();
    if (result.error.empty()) result.error = "unknown error";
  } catch (...) {
    result.error = "unknown error";
  }
  if (!result.ok()) {
    result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
    if (settings.cancelled && settings.cancelled())
      spdlog::info("pipeline warm-up on {} stopped after {:.2f} s: heygemd is stopping", plan.device, result.seconds);
    else
      spdlog::warn("pipeline warm-up on {} failed after {:.2f} s: {} (heygemd serves on; its first job may pay "
                   "one-time costs)",
                   plan.device, result.seconds, result.error);
  }
  return result;
}

}  // namespace

std::vector<PipelineWarmupPlan> plan_pipeline_warmup(const residency::ResidencyConfig& config,
                                                     const residency::ModelRegistry& registry,
                                                     const std::vector<std::string>& devices) {
  std::vector<PipelineWarmupPlan> plans;
  for (const auto& spec : config.models) {
    if (!preloaded(spec, true)) continue;
    for (const auto& device : registry.replicas(spec.name, true)) {
      if (!devices.empty() && std::find(devices.begin(), devices.end(), device) == devices.end()) continue;
      if (std::any_of(plans.begin(), plans.end(), [&](const PipelineWarmupPlan& p) { return p.device == device; }))
        continue;
      plans.push_back({device, model_on(config, registry, device, true), model_on(config, registry, device, false)});
    }
  }
  return plans;
}

std::vector<PipelineWarmupResult> warm_pipeline(residency::ModelRegistry& registry,
                                                const residency::ResidencyConfig& config,
                                                const std::vector<PipelineWarmupPlan>& plans,
                                                const PipelineWarmupSettings& settings) {
  std::vector<PipelineWarmupResult> results;
  if (plans.empty()) return results;
  std::string folder_error;
  try {
    std::error_code ec;
    std::filesystem::remove_all(settings.folder, ec);  // a crash's leftovers
    create_private_directories(settings.folder);
  } catch (const std::exception& e) {
    folder_error = e.what();
  }
  if (!folder_error.empty()) {
    for (const auto& plan : plans) {
      PipelineWarmupResult result;
      result.plan = plan;
      result.error = folder_error;
      results.push_back(result);
      spdlog::warn("pipeline warm-up on {} not run: {} (heygemd serves on; its first job may pay one-time costs)",
                   plan.device, folder_error);
    }
    return results;
  }
  if (plans.size() == 1) {
    results.push_back(warm_device(registry, config, plans.front(), settings));
  } else {
    // One thread per device: several GPUs warm at once (a thread that cannot start: in turn).
    std::vector<std::future<PipelineWarmupResult>> running;
    for (const auto& plan : plans) {
      const auto warm = [&registry, &config, &settings, plan] { return warm_device(registry, config, plan, settings); };
      try {
        running.push_back(std::async(std::launch::async, warm));
      } catch (const std::system_error&) {
        running.push_back(std::async(std::launch::deferred, warm));
      }
    }
    for (auto& item : running) results.push_back(item.get());
  }
  // std::filesystem's own remove_all: every heygem binary binds the C++ runtime's copy, not a
  // PyTorch wheel's (cmake/HeygemWarnings.cmake), as the spool's clean-up does.
  std::error_code ec;
  std::filesystem::remove_all(settings.folder, ec);
  if (ec) spdlog::warn("pipeline warm-up: cannot remove {}: {}", settings.folder.string(), ec.message());
  return results;
}

}  // namespace heygem::jobs
