#pragma once
// One lip-sync item: (audio, video or still image) -> MP4. Decode, detect, generate, blend and encode
// run as stages on their own threads, joined by bounded queues, so memory does not grow with the
// input's length and a GPU overlaps its work with the CPU-bound encoder.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "daemon/pipeline/item_options.hpp"

namespace heygem::media {
struct Frame;
}
namespace heygem::models {
class Wav2LipGenerator;
class FaceDetector;
class GfpganRestorer;
}  // namespace heygem::models
namespace heygem::residency {
class ForwardQueue;
}

namespace heygem::pipeline {

class AvatarCache;

struct ItemProgress {
  std::string stage;  // "audio", "render", "finalize"
  int64_t frames_done = 0, frames_total = 0;
  double fps = 0, eta_seconds = 0;
};

struct StageTiming {
  std::string name;
  double busy_seconds = 0;  // time the stage's thread spent working (not waiting on queues)
  int64_t frames = 0;
  bool cached = false;      // detect: the boxes came from the avatar cache, no detector ran
  double fps() const { return busy_seconds > 0 ? static_cast<double>(frames) / busy_seconds : 0; }
};

struct ItemReport {
  int64_t frames = 0;
  int64_t frames_without_face = 0;
  int64_t frames_gated = 0;  // silent frames the silence gate passed through unchanged
  int64_t frames_restored = 0;  // faces restored by the enhance stage
  int64_t source_frames = 0;
  int width = 0, height = 0;
  double fps = 0;
  double wall_seconds = 0;
  std::vector<StageTiming> stages;
  // "hit": the faces came from the avatar cache (no detector call); "miss": detected (and stored
  // once the item succeeded); "off": no detection (fixed box), no cache, or the item bypassed it.
  std::string avatar_cache = "off";
  // Where the frames were between decoder and encoder: "host", or the device of the GPU frame path
  // ("cuda:0"), with " (NVDEC)" when NVDEC decoded them there.
  std::string frame_path = "host";
  const StageTiming* stage(const std::string& name) const;
};

struct ItemModels {
  const models::Wav2LipGenerator* generator = nullptr;  // required
  const models::FaceDetector* detector = nullptr;       // required unless options.box is set
  // The models' names for the log lines of their stages (the journal's MODEL=); "" = the caller's.
  std::string generator_name{}, detector_name{};
  // The avatar cache (null = none) and what it keys the detector on: kind, weights file, placement
  // (avatar_cache.hpp). With a cache hit the detector is not called and may be null.
  const AvatarCache* avatar_cache = nullptr;
  std::string detector_identity{};
  // The forward queues of the models' devices (the daemon: the device owners', shared by every
  // running item, which batches their forwards together). Null: the run starts one of its own per model.
  residency::ForwardQueue* generator_forwards = nullptr;
  residency::ForwardQueue* detector_forwards = nullptr;
  residency::ForwardQueue* restorer_forwards = nullptr;
  // --enhance: after the mouth is pasted every face is restored by GFPGAN (pipeline/face_restore.hpp),
  // aligned by the detector's 5 landmarks, so the detector must give them (RetinaFace) and the item
  // may not use a fixed box; the avatar cache (boxes only) is bypassed. Null = no restoration.
  const models::GfpganRestorer* restorer = nullptr;
  std::string restorer_name{};
  int restorer_batch = 0;  // faces per restorer call, 0 = restore_faces' default
};

struct ItemFiles {
  std::filesystem::path audio;    // any FFmpeg-readable audio, or a video whose audio track is used
  std::filesystem::path video;    // a video or a still image
  std::filesystem::path output;   // the MP4 to write (via a temp file, renamed on success)
  std::filesystem::path scratch;  // folder for temporary data (loop spill); default: output's folder
};

struct RunHooks {
  std::function<void(const ItemProgress&)> progress;  // called from pipeline threads, rate-limited
  std::function<bool()> cancelled;                    // polled between batches
  // Every finished frame, BGR24, in order, before it is encoded (parity tests tap here).
  std::function<void(int64_t index, const media::Frame&)> frame_tap;
};

// Runs the item; its stage threads only submit forwards to the queues and wait. Log lines from its stages carry the journal fields of the calling thread (JOB_ID,
// MODEL) with STAGE set to audio, decode, detect, generate, blend or encode.
// Throws heygem::Error naming the file and the cause (invalid_input), or
// ErrorCode::cancelled; on any failure no output file is left behind.
ItemReport run_lip_sync(const ItemFiles& files, const ItemOptions& options, const ItemModels& models,
                        const RunHooks& hooks = {});

}  // namespace heygem::pipeline
