#pragma once
// The options of one lip-sync item, as a job's submit request carries them (JSON), validated.
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>

#include "daemon/pipeline/face_batch.hpp"
#include "daemon/pipeline/face_track.hpp"
#include "daemon/pipeline/silence_gate.hpp"
#include "daemon/pipeline/timeline.hpp"

namespace heygem::pipeline {

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
  int generator_batch = 0;            // 0 = device default (128 on GPU, 16 on CPU)
  int detector_batch = 0;             // 0 = device default (32 on GPU, 4 on CPU)
  std::string generator;              // model names; empty = the daemon's defaults
  std::string detector;
  SilenceGateOptions silence_gate;    // source frames where the audio is silent (on by default)
  std::optional<bool> enhance;        // GFPGAN face restoration; unset = the daemon's models.default_enhance
  bool avatar_cache = true;           // reuse (and record) the video's faces in the daemon's avatar cache
  EncodeOptions encode;
};

// Reads the submit options. Unknown keys and bad values -> heygem::Error(invalid_argument) naming
// the key ("box: expected [top, bottom, left, right] with top < bottom, left < right").
ItemOptions parse_item_options(const nlohmann::json& options);
nlohmann::json to_json(const ItemOptions& options);

}  // namespace heygem::pipeline
