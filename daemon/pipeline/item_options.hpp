#pragma once
// The options of one lip-sync item: what a job asked for (protocol::SubmitOptions) and the
// pipeline's own knobs (batch sizes, pads, encoder threads) that tests and benchmarks set.
#include <optional>
#include <string>

#include "common/protocol.hpp"
#include "daemon/pipeline/face_batch.hpp"
#include "daemon/pipeline/face_track.hpp"
#include "daemon/pipeline/silence_gate.hpp"
#include "daemon/pipeline/timeline.hpp"

namespace heygem::pipeline {

enum class FramePlacement { automatic, host, models_device };

struct EncodeOptions {
  int crf = 18;                     // near visually lossless
  std::string preset = "veryfast";  // x264 preset
  bool lossless = false;            // x264 qp 0 in yuv444p: decoded frames equal the rendered ones
  int threads = 0;                  // x264 threads, 0 = auto (all cores)
};

struct ItemOptions {
  BlendMode blend = BlendMode::feather;
  bool strict = false;                // fail on the first frame without a face instead of passing it through
  LoopMode loop = LoopMode::pingpong;
  OutputLength length = OutputLength::audio;  // `reference` reproduces inference.py's frame count
  std::optional<double> fps;          // output frame rate; default the source's average (stills: still_fps)
  double still_fps = 25.0;
  std::optional<FaceBox> box;         // fixed face box: no detection, no pads, no smoothing
  bool smooth = true;                 // 5-frame box smoothing (off = --nosmooth)
  Pads pads;
  int generator_batch = 0;            // 0 = the generator's device default (models/warm_batches.hpp)
  int detector_batch = 0;             // 0 = the detector's device default (models/warm_batches.hpp)
  std::string generator;              // model names; empty = the daemon's defaults
  std::string detector;
  SilenceGateOptions silence_gate;    // source frames where the audio is silent (on by default)
  std::optional<bool> enhance;        // GFPGAN face restoration; unset = the daemon's models.default_enhance
  bool avatar_cache = true;           // reuse (and record) the video's faces in the daemon's avatar cache
  EncodeOptions encode;
  // Where frames live between decoder and encoder (device_frames.hpp). automatic: on the models' GPU
  // when they share one, else host memory; host: always host memory; models_device: as tensors on
  // the models' device even when that is the CPU (tests run the GPU path's code there).
  FramePlacement frames = FramePlacement::automatic;
  int items_at_once = 1;              // the daemon's slots over all devices: sizes the CPU threads (thread_plan.hpp)
};

// The pipeline's view of a job's options. The options are validated once, where they enter the
// daemon (protocol::submit_options_from_json, which also reads a stored job's); this is only the
// mapping of that typed model, with the pipeline's own defaults for what a job cannot set.
ItemOptions item_options_for(const protocol::SubmitOptions& options);

}  // namespace heygem::pipeline
