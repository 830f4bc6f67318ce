#pragma once
// The pipeline warm-up (issue 16, item 3): once the preload models are warm, and before heygemd says
// READY, one short synthetic item per device that holds a preloaded generator runs through the whole
// pipeline (pipeline::run_lip_sync with the device's resident generator and detector and their
// forward queues, as a job's items do), from inputs made here in a temporary folder: an H.264 + AAC
// clip of a plain picture with a fixed face box. So the first job after ready finds FFmpeg's
// decoder (NVDEC on a GPU), x264 and the AAC codecs opened once before, swscale's tables built, the
// frame path's colour conversions, crops and paste-back run on the device, the allocators grown and
// the stage threads' libraries initialised, and costs what the tenth does. The output is discarded
// and the folder removed. A failure is logged as a warning and never stops the daemon.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "daemon/residency/model_registry.hpp"

namespace heygem::jobs {

// One device's warm-up item: the models it runs (those a default job would get there).
struct PipelineWarmupPlan {
  std::string device;     // canonical: "cpu", "cpu:1", "cuda:0"
  std::string generator;  // a preloaded wav2lip entry with a replica on `device`
  std::string detector;   // a preloaded detector there, "" when none (the item uses a fixed box anyway)
};

// The devices that hold a preloaded generator, in configured order, each once: the default
// generator when it is preloaded there, else the first preloaded one; likewise the detector.
// `devices`: only these (empty = all).
std::vector<PipelineWarmupPlan> plan_pipeline_warmup(const residency::ResidencyConfig& config,
                                                     const residency::ModelRegistry& registry,
                                                     const std::vector<std::string>& devices = {});

struct PipelineWarmupSettings {
  // The temporary folder (made private, removed before and after): heygemd uses
  // <state_dir>/pipeline-warmup.
  std::filesystem::path folder;
  // The daemon's job slots over all devices: the item sizes its CPU threads as a job's would.
  int items_at_once = 1;
  // 0 = the defaults: on a GPU the warm-up shapes' frame size (residency::WarmupShapes, 1280x720)
  // and 1 s at 25 fps; on the CPU 320x240 and 8 frames, of which only the first few reach the
  // generator (the clip's audio falls silent: the silence gate's pass-through and cross-fade run too).
  int width = 0, height = 0;
  double seconds = 0;
  // Polled between batches: true stops the item (heygemd is stopping).
  std::function<bool()> cancelled;
};

struct PipelineWarmupResult {
  PipelineWarmupPlan plan;
  double seconds = 0;        // the whole item, inputs and clean-up included
  long long frames = 0;      // frames rendered
  long long frames_gated = 0;  // of which the silence gate passed through (the clip ends silent)
  std::string frame_path;    // pipeline::ItemReport::frame_path ("host", "cuda:0 (NVDEC)")
  std::string error;         // why it failed, "" = it succeeded (or was skipped)
  std::string skipped;       // why it did not run: the generator is not loaded on the device now
  bool ok() const { return error.empty(); }
};

// Runs the plans' items, one thread per device, and logs one line per device ("pipeline warm-up on
// cuda:0: 1.21 s (...)", or a warning with the cause). Never throws: every failure (the folder
// cannot be made, a model cannot be acquired, the item fails) is the result's `error`. It loads no
// model: a device whose generator is not loaded now is skipped, a detector that is not is left out.
std::vector<PipelineWarmupResult> warm_pipeline(residency::ModelRegistry& registry,
                                                const residency::ResidencyConfig& config,
                                                const std::vector<PipelineWarmupPlan>& plans,
                                                const PipelineWarmupSettings& settings);

}  // namespace heygem::jobs
