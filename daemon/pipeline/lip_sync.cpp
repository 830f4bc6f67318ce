#include "daemon/pipeline/lip_sync.hpp"
#include "daemon/pipeline/thread_plan.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "common/sha256.hpp"
#include "daemon/media/audio_reader.hpp"
#include "daemon/media/mel.hpp"
#include "daemon/media/video_writer.hpp"
#include "daemon/models/face_detector.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/warm_batches.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/avatar_cache.hpp"
#include "daemon/pipeline/bounded_queue.hpp"
#include "daemon/pipeline/device_frames.hpp"
#include "daemon/pipeline/face_restore.hpp"
#include "daemon/pipeline/frame_source.hpp"
#include "daemon/pipeline/silence_gate.hpp"
#include "daemon/residency/forward_queue.hpp"
#include "daemon/system/journal_log.hpp"

namespace heygem::pipeline {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kFaceSize = 96;
constexpr size_t kQueueFrames = 8;  // frames buffered between two stages (bounds memory)

// A frame on its way through the stages.
struct Work {
  int64_t output_index = 0;
  int64_t source_index = 0;
  bool first_pass = true;
  std::optional<FaceBox> box;
  media::Frame frame;
  std::optional<std::array<float, 10>> landmarks{};  // the detector's 5 points (RetinaFace), for --enhance
  // On the GPU frame path: the frame as BGR uint8 [H, W, 3] on the models' GPU; `frame` holds no
  // pixels. Once rendered, its encoder picture (converted there, downloaded with its batch) replaces it.
  at::Tensor image{};
  std::optional<media::Yuv420Picture> encoder_picture{};
};

// Accumulates a stage's busy time; shared with the report.
class StageClock {
 public:
  explicit StageClock(std::string name) { timing_.name = std::move(name); }
  template <typename F>
  auto measure(F&& body) {
    auto start = Clock::now();
    struct Stop {
      StageClock* self;
      Clock::time_point start;
      ~Stop() { self->timing_.busy_seconds += std::chrono::duration<double>(Clock::now() - start).count(); }
    } stop{this, start};
    return body();
  }
  void count(int64_t frames) { timing_.frames += frames; }
  void mark_cached() { timing_.cached = true; }
  const StageTiming& timing() const { return timing_; }

 private:
  StageTiming timing_;
};

// First failure wins; every queue is aborted so all stages unwind promptly.
class FailureLatch {
 public:
  template <typename... Queues>
  void fail(std::exception_ptr error, Queues&... queues) {
    {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = error;
    }
    (queues.abort(), ...);
  }
  void rethrow() {
    std::lock_guard lock(mutex_);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

media::Rational to_rational(double fps) {
  if (std::fabs(fps - std::round(fps)) < 1e-9) return {static_cast<int>(std::lround(fps)), 1};
  return {static_cast<int>(std::lround(fps * 1001.0)), 1001};
}

bool on_cpu(const models::Wav2LipGenerator& generator) { return generator.placement().device.is_cpu(); }

// Faces per generator call: the item's choice, else the default the daemon warms the generator with.
int64_t generator_batch(const ItemOptions& options, const models::Wav2LipGenerator& generator) {
  return options.generator_batch > 0 ? options.generator_batch : models::default_generator_batch(!on_cpu(generator));
}

// Frames each queue holds: at least one generator batch, so the decoder keeps decoding while the
// generator collects its batch and the encoder drains the previous one (measured on an H200: with
// 8-frame queues decode and encode ran one after the other, 14.4 s for 1500 720p frames against
// 7.0 s of encoding).
size_t queue_capacity(const ItemOptions& options, const ItemModels& models) {
  return std::max(kQueueFrames, static_cast<size_t>(generator_batch(options, *models.generator)) + kQueueFrames);
}

// The box region of a frame, as a view (no copy).
at::Tensor region_view(const at::Tensor& image, const FaceBox& box) {
  return image.narrow(0, box.top, box.height()).narrow(1, box.left, box.width());
}

// Detector input: uint8 [N,H,W,3], on the CPU or (GPU frame path) already on the detector's device.
at::Tensor frames_tensor(const std::vector<Work*>& batch) {
  std::vector<at::Tensor> views;
  views.reserve(batch.size());
  for (Work* w : batch) views.push_back(w->image.defined() ? w->image : frame_view(w->frame));
  return at::stack(views);
}

FaceBox clamp_box(const FaceBox& box, int width, int height, const std::string& video) {
  FaceBox b{std::max(0, box.top), std::min(height, box.bottom), std::max(0, box.left), std::min(width, box.right)};
  if (b.width() <= 0 || b.height() <= 0)
    throw Error(ErrorCode::invalid_argument, "box lies outside the " + std::to_string(width) + "x" +
                                                 std::to_string(height) + " frames of " + video);
  return b;
}

class LipSyncRun {
 public:
  LipSyncRun(const ItemFiles& files, const ItemOptions& options, const ItemModels& models, const RunHooks& hooks)
      : files_(files), options_(options), models_(models), hooks_(hooks), caller_fields_(system::current_log_fields()) {
    generator_forwards_ = models_.generator_forwards ? models_.generator_forwards : own_queue(models_.generator->placement());
    if (models_.detector)
      detector_forwards_ = models_.detector_forwards ? models_.detector_forwards : own_queue(models_.detector->placement());
    if (models_.restorer)
      restorer_forwards_ = models_.restorer_forwards ? models_.restorer_forwards : own_queue(models_.restorer->placement());
  }

  ItemReport run();

 private:
  void prepare_audio();
  void source_stage();
  void detect_stage();
  void pass_cached_faces(Work work, std::deque<Work>& waiting, BoxSmoother& smoother);
  void smooth_face(Work work, std::optional<RawFace> face, std::deque<Work>& waiting, BoxSmoother& smoother);
  bool avatar_cache_enabled() const;
  void look_up_avatar_cache(const std::string& video_sha256);
  void store_avatar_cache(const FrameSource& source);
  size_t detector_batch_size() const;
  void generate_stage();
  void encode_stage();
  void detect_batch(std::vector<Work>& batch, std::deque<Work>& waiting, BoxSmoother& smoother);
  void release_ready(std::deque<Work>& waiting, std::vector<BoxSmoother::Item> ready);
  void generate_batch(std::vector<Work>& batch);
  void restore_batch(std::vector<Work>& batch);
  std::optional<c10::Device> frames_device() const;
  void encode_one(Work& work, media::VideoWriter& writer, int64_t index);
  void convert_for_encoder(std::vector<Work>& batch);
  float gate_weight(const Work& work) const {
    const auto i = static_cast<size_t>(work.output_index);
    return i < gate_weights_.size() ? gate_weights_[i] : 1.0f;
  }
  bool cancelled() const { return hooks_.cancelled && hooks_.cancelled(); }
  void check_cancel() const {
    if (cancelled()) throw Error(ErrorCode::cancelled, "cancelled");
  }
  // The journal fields of a stage's log lines: the caller's job, the stage's model (if it has one).
  system::LogFields stage_fields(const std::string& stage, const std::string& model = "") const {
    return {caller_fields_.job_id, model.empty() ? caller_fields_.model : model, stage};
  }
  void report_progress(int64_t done, bool force);
  template <typename F>
  void guarded(F&& body) {
    try {
      body();
    } catch (...) {
      latch_.fail(std::current_exception(), decoded_, detected_, rendered_);
    }
  }

  const ItemFiles& files_;
  const ItemOptions& options_;
  const ItemModels& models_;
  const RunHooks& hooks_;
  const system::LogFields caller_fields_;  // stage threads start without any

  // A run given no queue for a model starts one per model, so that its detector and generator still
  // overlap (as stage threads did) and the detect stage's busy time is the detector's alone.
  residency::ForwardQueue* own_queue(const models::Placement& placement) {
    own_queues_.push_back(std::make_unique<residency::ForwardQueue>(placement.device.str(), residency::BatchingSettings{}));
    return own_queues_.back().get();
  }
  std::vector<std::unique_ptr<residency::ForwardQueue>> own_queues_;
  residency::ForwardQueue* generator_forwards_ = nullptr;
  residency::ForwardQueue* detector_forwards_ = nullptr;
  residency::ForwardQueue* restorer_forwards_ = nullptr;
  const residency::ForwardClient forward_client_{this, hooks_.cancelled};

  media::Matrix mel_;
  int64_t audio_samples_ = 0;
  std::vector<int64_t> chunk_starts_;
  std::unique_ptr<FrameSource> source_;
  std::optional<c10::Device> frames_device_;  // set: the GPU frame path, every frame lives there
  std::string frame_path_ = "host";           // ItemReport::frame_path
  int encoded_width_ = 0, encoded_height_ = 0;  // the encoder's picture size (even)
  media::Rational fps_;
  int width_ = 0, height_ = 0;
  std::vector<std::optional<FaceBox>> source_boxes_;  // smoothed box per source frame (loops reuse it)
  std::vector<std::optional<std::array<float, 10>>> source_landmarks_;  // per source frame (--enhance)
  std::atomic<int64_t> frames_restored_{0};
  std::atomic<int64_t> frames_without_face_{0};
  std::vector<float> gate_weights_;  // per output frame: weight of the generated face (silence gate)
  std::atomic<int64_t> frames_gated_{0};
  // The avatar cache: the key of this run, the faces found there (a hit), or those detected now.
  std::optional<AvatarKey> cache_key_;
  std::optional<AvatarBoxes> cached_faces_;
  // A partial hit: an entry from a shorter run; its first reused_frames_ faces are taken, the rest
  // of the first pass is detected (and the longer entry stored).
  std::optional<AvatarBoxes> partial_faces_;
  size_t reused_frames_ = 0;
  std::vector<std::optional<RawFace>> detected_faces_;  // per first-pass source frame (detect thread)

  BoundedQueue<Work> decoded_{queue_capacity(options_, models_)}, detected_{queue_capacity(options_, models_)},
      rendered_{queue_capacity(options_, models_)};
  FailureLatch latch_;
  StageClock decode_clock_{"decode"}, detect_clock_{"detect"}, generate_clock_{"generate"},
      blend_clock_{"blend"}, restore_clock_{"restore"}, encode_clock_{"encode"};
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_progress_{};
};

void LipSyncRun::prepare_audio() {
  const system::ScopedLogFields fields(stage_fields("audio"));
  if (hooks_.progress) hooks_.progress({"audio", 0, 0, 0, 0});
  std::vector<float> samples = media::load_audio_16k_mono(files_.audio);
  audio_samples_ = static_cast<int64_t>(samples.size());
  mel_ = media::melspectrogram(samples);
  if (mel_.cols < media::kMelStepSize)
    throw Error(ErrorCode::invalid_input, files_.audio.string() + ": the audio is too short (" +
                                              std::to_string(samples.size()) + " samples at 16 kHz)");
}

void LipSyncRun::report_progress(int64_t done, bool force) {
  if (!hooks_.progress) return;
  auto now = Clock::now();
  if (!force && now - last_progress_ < std::chrono::milliseconds(250)) return;
  last_progress_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double fps = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  const int64_t total = static_cast<int64_t>(chunk_starts_.size());
  hooks_.progress({"render", done, total, fps, fps > 0 ? static_cast<double>(total - done) / fps : 0});
}

void LipSyncRun::source_stage() {
  const system::ScopedLogFields fields(stage_fields("decode"));
  guarded([&] {
    SourceFrame item;
    while (true) {
      check_cancel();
      const bool got = decode_clock_.measure([&] { return source_->next(item); });
      if (!got) break;
      decode_clock_.count(1);
      if (frames_device_ && item.output_index == 0) {
        frame_path_ = frames_device_->str() + (source_->hardware_decoding() ? " (NVDEC)" : "");
        spdlog::info("{}: frames stay on {} from decoding to the encoder's YUV ({})", files_.video.string(),
                     frames_device_->str(),
                     source_->hardware_decoding()           ? "NVDEC"
                     : source_->hardware_fallback().empty() ? "decoded on the CPU"
                                                            : "decoded on the CPU: " + source_->hardware_fallback());
      }
      Work work{item.output_index, item.source_index, item.first_pass, std::nullopt, std::move(item.frame)};
      if (frames_device_) {
        // NVDEC's picture becomes a BGR tensor beside the models; a frame the CPU decoded (a
        // fallback, a loop's spill) goes up once
        decode_clock_.measure([&] {
          c10::InferenceMode guard;
          if (work.frame.device_picture)
            work.image = device_picture_to_bgr(*work.frame.device_picture);
          else
            work.image = frame_view(work.frame).to(at::TensorOptions().device(*frames_device_), false, true).contiguous();
          work.frame.device_picture.reset();
          work.frame.data = {};
        });
      }
      if (!decoded_.push(std::move(work))) return;
    }
    decoded_.close();
  });
}

void LipSyncRun::release_ready(std::deque<Work>& waiting, std::vector<BoxSmoother::Item> ready) {
  // the smoother finishes frames in the order they were fed, which is the order of `waiting`
  for (auto& item : ready) {
    Work work = std::move(waiting.front());
    waiting.pop_front();
    if (work.source_index != item.frame) throw Error(ErrorCode::internal, "face tracking lost frame order");
    if (static_cast<size_t>(item.frame) >= source_boxes_.size()) source_boxes_.resize(item.frame + 1);
    source_boxes_[item.frame] = item.box;
    work.box = item.box;
    if (static_cast<size_t>(item.frame) < source_landmarks_.size()) work.landmarks = source_landmarks_[item.frame];
    if (!detected_.push(std::move(work))) return;
  }
}

void LipSyncRun::detect_batch(std::vector<Work>& batch, std::deque<Work>& waiting, BoxSmoother& smoother) {
  if (batch.empty()) return;
  std::vector<Work*> frames;
  for (auto& w : batch) frames.push_back(&w);
  auto detections = detect_clock_.measure([&] {
    c10::InferenceMode guard;
    return detector_forwards_->detect(*models_.detector, frames_tensor(frames), forward_client_);
  });
  detect_clock_.count(static_cast<int64_t>(batch.size()));
  for (size_t i = 0; i < batch.size(); ++i) {
    std::optional<RawFace> face;
    const auto index = static_cast<size_t>(batch[i].source_index);
    if (!detections.at(i).empty()) {
      const auto& d = detections[i].front();  // the highest-scoring face, as the reference takes it
      face = RawFace{d.x1, d.y1, d.x2, d.y2};
      if (d.has_landmarks) {
        if (index >= source_landmarks_.size()) source_landmarks_.resize(index + 1);
        source_landmarks_[index] = d.landmarks;
      }
    }
    if (index >= detected_faces_.size()) detected_faces_.resize(index + 1);
    detected_faces_[index] = face;
    smooth_face(std::move(batch[i]), face, waiting, smoother);
  }
  batch.clear();
}

// Pads the face, as the reference does, and feeds it to the smoother.
void LipSyncRun::smooth_face(Work work, std::optional<RawFace> face, std::deque<Work>& waiting,
                             BoxSmoother& smoother) {
  std::optional<FaceBox> box;
  if (face) box = padded_box(face->x1, face->y1, face->x2, face->y2, options_.pads, width_, height_);
  const int64_t index = work.source_index;
  waiting.push_back(std::move(work));
  release_ready(waiting, smoother.push(index, box));
}

// A cache hit: the detector's answer for this frame comes from the cache entry, so the boxes are
// the ones a detection would give, smoothed up to where this run's first pass ends.
void LipSyncRun::pass_cached_faces(Work work, std::deque<Work>& waiting, BoxSmoother& smoother) {
  const auto index = static_cast<size_t>(work.source_index);
  if (index >= cached_faces_->faces.size())
    throw Error(ErrorCode::internal, "avatar cache: the entry for " + files_.video.string() + " has " +
                                         std::to_string(cached_faces_->faces.size()) + " frames, the video more");
  detect_clock_.count(1);
  smooth_face(std::move(work), cached_faces_->faces[index], waiting, smoother);
}

// By the detector's own device, as the daemon warmed it (a mixed placement, detector on the GPU
// and generator on the CPU say, must not run an unwarmed batch nor shift the avatar cache key). A
// run without a detector (an avatar cache hit in tests) keys on the generator's device.
size_t LipSyncRun::detector_batch_size() const {
  if (options_.detector_batch > 0) return static_cast<size_t>(options_.detector_batch);
  const bool on_gpu = models_.detector ? !models_.detector->placement().device.is_cpu() : !on_cpu(*models_.generator);
  return static_cast<size_t>(models::default_detector_batch(on_gpu));
}

void LipSyncRun::detect_stage() {
  const system::ScopedLogFields fields(stage_fields("detect", models_.detector_name));
  guarded([&] {
    const size_t batch_size = detector_batch_size();
    if (cached_faces_) detect_clock_.mark_cached();
    BoxSmoother smoother(5, options_.smooth);
    std::vector<Work> batch;   // first-pass frames not detected yet
    std::deque<Work> waiting;  // detected frames waiting for their smoothed box
    bool first_pass_closed = false;
    auto close_first_pass = [&] {
      detect_batch(batch, waiting, smoother);
      release_ready(waiting, smoother.finish());
      first_pass_closed = true;
    };
    while (auto work = decoded_.pop()) {
      check_cancel();
      if (options_.box) {
        work->box = clamp_box(*options_.box, width_, height_, files_.video.string());
        if (!detected_.push(std::move(*work))) return;
      } else if (work->first_pass && cached_faces_) {
        pass_cached_faces(std::move(*work), waiting, smoother);
      } else if (work->first_pass && static_cast<size_t>(work->source_index) < reused_frames_) {
        const auto index = static_cast<size_t>(work->source_index);
        if (index >= detected_faces_.size()) detected_faces_.resize(index + 1);
        detected_faces_[index] = partial_faces_->faces[index];
        detect_clock_.count(1);
        smooth_face(std::move(*work), partial_faces_->faces[index], waiting, smoother);
      } else if (work->first_pass) {
        batch.push_back(std::move(*work));
        if (batch.size() >= batch_size) detect_batch(batch, waiting, smoother);
      } else {
        if (!first_pass_closed) close_first_pass();
        work->box = source_boxes_.at(static_cast<size_t>(work->source_index));
        if (static_cast<size_t>(work->source_index) < source_landmarks_.size())
          work->landmarks = source_landmarks_[static_cast<size_t>(work->source_index)];
        if (!detected_.push(std::move(*work))) return;
      }
    }
    if (!options_.box && !first_pass_closed) close_first_pass();
    detected_.close();
  });
}

void LipSyncRun::generate_batch(std::vector<Work>& batch) {
  const auto& generator = *models_.generator;
  const c10::Device device = generator.placement().device;
  std::vector<size_t> faces;  // indices of frames that have a face and are not gated
  for (size_t i = 0; i < batch.size(); ++i) {
    if (batch[i].box) {
      if (gate_weight(batch[i]) > 0.0f) faces.push_back(i);
      else ++frames_gated_;  // silence: the source frame passes through unchanged
      continue;
    }
    ++frames_without_face_;
    if (options_.strict)
      throw Error(ErrorCode::invalid_input, files_.video.string() + ": no face in source frame " +
                                                std::to_string(batch[i].source_index) + " (strict mode)");
  }
  generate_clock_.count(static_cast<int64_t>(batch.size()));
  if (faces.empty()) {
    restore_batch(batch);
    return;
  }
  c10::InferenceMode guard;
  std::vector<at::Tensor> regions;
  std::vector<FaceBox> relative;
  std::vector<float> mel_values;
  at::Tensor patches = generate_clock_.measure([&] {
  at::Tensor mel = at::empty({static_cast<int64_t>(faces.size()), 1, mel_.rows, media::kMelStepSize}, at::kFloat);
  for (size_t k = 0; k < faces.size(); ++k) {
    Work& w = batch[faces[k]];
    at::Tensor view = w.image.defined() ? region_view(w.image, *w.box) : region_view(frame_view(w.frame), *w.box);
    regions.push_back(device.is_cpu() ? view : view.to(device));
    relative.push_back(FaceBox{0, w.box->height(), 0, w.box->width()});
    media::copy_mel_chunk(mel_, chunk_starts_.at(static_cast<size_t>(w.output_index)), mel_values);
    std::memcpy(mel[static_cast<int64_t>(k)].data_ptr<float>(), mel_values.data(), mel_values.size() * sizeof(float));
  }
  at::Tensor input = make_generator_faces(regions, relative, kFaceSize);
  return generator_output_to_u8(generator_forwards_->generate(generator, mel.to(device), input,
                                                             generator_batch(options_, generator), forward_client_));
  });
  // paste-back (and, on a GPU, the copy of the pasted regions back into the host frames)
  const system::ScopedLogFields blending(stage_fields("blend", models_.generator_name));
  blend_clock_.measure([&] {
    for (size_t k = 0; k < faces.size(); ++k) {
      const float weight = gate_weight(batch[faces[k]]);
      const at::Tensor before = weight < 1.0f ? regions[k].clone() : at::Tensor();
      paste_patch(regions[k], patches[static_cast<int64_t>(k)], relative[k], options_.blend);
      if (before.defined()) {  // the silence gate's cross-fade next to a gated stretch
        const at::Tensor faded = regions[k].to(at::kFloat).mul_(weight).add_(before.to(at::kFloat).mul_(1.0f - weight));
        regions[k].copy_(faded.round_().clamp_(0, 255).to(at::kByte));
      }
      Work& w = batch[faces[k]];
      if (!device.is_cpu() && !w.image.defined()) region_view(frame_view(w.frame), *w.box).copy_(regions[k].cpu());
    }
  });
  blend_clock_.count(static_cast<int64_t>(faces.size()));
  restore_batch(batch);
}

// --enhance: every frame of the batch with a face (generated, cross-faded or gated alike, so the look
// does not change at the silence gate's edges) gets its face restored and pasted back.
void LipSyncRun::restore_batch(std::vector<Work>& batch) {
  if (!models_.restorer) return;
  std::vector<FaceToRestore> faces;
  for (auto& w : batch)
    if (w.box && w.landmarks) faces.push_back(FaceToRestore{&w.frame, *w.landmarks, w.image.defined() ? &w.image : nullptr});
  if (faces.empty()) return;
  const system::ScopedLogFields restoring(stage_fields("restore", models_.restorer_name));
  // On the restorer's device queue, batched with the other items' faces.
  const RestoreForward forward = [this](const at::Tensor& crops) {
    const auto* restorer = models_.restorer;
    const auto output = restorer_forwards_->submit(
        restorer, {crops.contiguous()},
        [restorer](const std::vector<at::Tensor>& inputs) -> residency::ForwardQueue::Output {
          return restorer->restore(inputs.at(0));
        },
        forward_client_);
    return std::get<at::Tensor>(output);
  };
  restore_clock_.measure([&] { restore_faces(*models_.restorer, faces, models_.restorer_batch, forward); });
  restore_clock_.count(static_cast<int64_t>(faces.size()));
  frames_restored_ += static_cast<int64_t>(faces.size());
}

void LipSyncRun::generate_stage() {
  const system::ScopedLogFields fields(stage_fields("generate", models_.generator_name));
  guarded([&] {
    const auto batch_size = static_cast<size_t>(generator_batch(options_, *models_.generator));
    std::vector<Work> batch;
    auto flush = [&] {
      generate_batch(batch);
      convert_for_encoder(batch);
      for (auto& w : batch)
        if (!rendered_.push(std::move(w))) return false;
      batch.clear();
      return true;
    };
    while (auto work = detected_.pop()) {
      check_cancel();
      batch.push_back(std::move(*work));
      if (batch.size() >= batch_size && !flush()) return;
    }
    if (!batch.empty() && !flush()) return;
    rendered_.close();
  });
}

bool LipSyncRun::avatar_cache_enabled() const {
  // The cache holds boxes only; --enhance needs the detector's landmarks of every frame.
  return models_.avatar_cache && options_.avatar_cache && !options_.box && !models_.detector_identity.empty() &&
         !models_.restorer;
}

void LipSyncRun::look_up_avatar_cache(const std::string& video_sha256) {
  cache_key_ = AvatarKey{video_sha256, models_.detector_identity, fps_.num, fps_.den,
                         static_cast<int>(detector_batch_size())};
  auto entry = models_.avatar_cache->load(*cache_key_);
  const auto first_pass_limit = static_cast<int64_t>(chunk_starts_.size());
  if (entry && entry->covers(first_pass_limit)) {
    spdlog::info("avatar cache hit: the faces of {} come from {}, no detection", files_.video.string(),
                 models_.avatar_cache->entry_path(*cache_key_).string());
    cached_faces_ = std::move(entry);
  } else if (entry) {
    // Only whole detector batches are reused, so that the frames detected now are batched as a
    // fresh run would batch them: the result stays identical to detecting everything.
    const size_t batch = detector_batch_size();
    reused_frames_ = entry->faces.size() / batch * batch;
    spdlog::info("avatar cache: the entry for {} covers {} frames, this run needs up to {}; reusing {}, detecting the rest",
                 files_.video.string(), entry->faces.size(), first_pass_limit, reused_frames_);
    if (reused_frames_ > 0) partial_faces_ = std::move(entry);
  }
}

// After a successful miss: the detected faces go into the cache. A failure to store costs the next
// run its speed-up, not this item its result.
void LipSyncRun::store_avatar_cache(const FrameSource& source) {
  AvatarBoxes boxes;
  boxes.faces = std::move(detected_faces_);
  boxes.complete = source.source_frames() > 0 && static_cast<int64_t>(boxes.faces.size()) == source.source_frames();
  try {
    models_.avatar_cache->store(*cache_key_, boxes);
  } catch (const Error& e) {
    spdlog::warn("{}; the next run of this video detects its faces again", e.what());
  }
}

// The GPU frame path: every model of the item on one GPU, and an encoder that takes 4:2:0 (not the
// lossless RGB mode). Anything else keeps the frames on the CPU.
std::optional<c10::Device> LipSyncRun::frames_device() const {
  const c10::Device device = models_.generator->placement().device;
  if (options_.frames == FramePlacement::host || options_.encode.lossless) return std::nullopt;
  if (options_.frames == FramePlacement::automatic && !device.is_cuda()) return std::nullopt;
  if (models_.detector && models_.detector->placement().device != device) return std::nullopt;
  if (models_.restorer && models_.restorer->placement().device != device) return std::nullopt;
  return device;
}

// The GPU frame path's last step, a batch at a time: the rendered frames become the encoder's 4:2:0
// pictures on the GPU and come down in a few copies (1.5 bytes a pixel), so the encoder thread only hands
// them to x264. A frame tap (tests) keeps the BGR image to look at.
void LipSyncRun::convert_for_encoder(std::vector<Work>& batch) {
  if (!frames_device_ || batch.empty()) return;
  // a few frames per conversion: its float intermediates (~40 MB a 720p frame) stay small beside the
  // models, whatever the generator's batch
  constexpr size_t kFramesPerConversion = 16;
  blend_clock_.measure([&] {
    c10::InferenceMode guard;
    for (size_t start = 0; start < batch.size(); start += kFramesPerConversion) {
      const size_t end = std::min(batch.size(), start + kFramesPerConversion);
      std::vector<at::Tensor> images;
      for (size_t i = start; i < end; ++i) images.push_back(batch[i].image);
      const at::Tensor on_device = bgr_to_yuv420(at::stack(images), encoded_width_, encoded_height_);
      // pinned: the copy runs at the bus's speed (torch's host allocator caches these buffers)
      at::Tensor planes =
          at::empty(on_device.sizes(), on_device.options().device(at::kCPU).pinned_memory(on_device.is_cuda()));
      planes.copy_(on_device);
      for (size_t i = start; i < end; ++i) {
        batch[i].encoder_picture =
            yuv420_picture(planes[static_cast<int64_t>(i - start)], encoded_width_, encoded_height_);
        if (!hooks_.frame_tap) batch[i].image = at::Tensor();
      }
    }
  });
}

void LipSyncRun::encode_one(Work& work, media::VideoWriter& writer, int64_t index) {
  if (hooks_.frame_tap) {
    if (work.image.defined()) {
      c10::InferenceMode guard;
      media::Frame tapped = download_bgr(work.image);
      tapped.index = tapped.pts_index = index;
      hooks_.frame_tap(index, tapped);
      work.image = at::Tensor();
    } else {
      hooks_.frame_tap(index, work.frame);
    }
  }
  if (work.encoder_picture)
    encode_clock_.measure([&] { writer.write(*work.encoder_picture); });
  else
    encode_clock_.measure([&] { writer.write(std::move(work.frame)); });
}

ItemReport LipSyncRun::run() {
  // the content hash reads the whole video: it runs while the audio is decoded
  std::future<std::string> video_hash;
  if (avatar_cache_enabled())
    video_hash = std::async(std::launch::async, [video = files_.video] { return sha256_file_hex(video); });
  prepare_audio();
  check_cancel();

  std::optional<system::ScopedLogFields> stage;  // this thread probes and opens, then encodes
  stage.emplace(stage_fields("decode"));
  media::VideoReaderOptions reader_options;
  reader_options.constant_frame_rate = true;
  if (options_.fps) reader_options.output_fps = to_rational(*options_.fps);
  {
    // the output frame rate decides the number of mel chunks, so probe the video first
    media::VideoReader probe(files_.video, reader_options);
    fps_ = probe.info().still_image && !options_.fps ? to_rational(options_.still_fps) : probe.output_fps();
  }
  reader_options.output_fps = fps_;
  // NVDEC of the generator's GPU takes the decoding off the CPU, which x264 needs
  if (const c10::Device device = models_.generator->placement().device; device.is_cuda())
    reader_options.nvdec_device = device.has_index() ? device.index() : 0;
  frames_device_ = frames_device();
  reader_options.device_pictures = frames_device_.has_value();
  const ThreadPlan threads = plan_threads(0, options_.items_at_once, reader_options.nvdec_device.has_value());
  reader_options.decoder_threads = threads.decoder;
  reader_options.conversion_threads = threads.decode_conversion;
  chunk_starts_ = frame_mel_starts(mel_.cols, audio_samples_, media::kMelSampleRate, fps_.value(), options_.length);
  const int64_t total = static_cast<int64_t>(chunk_starts_.size());
  gate_weights_ = silence_gate_weights(mel_, chunk_starts_, options_.silence_gate);
  const auto scratch = files_.scratch.empty() ? files_.output.parent_path() : files_.scratch;
  source_ = std::make_unique<FrameSource>(files_.video, reader_options, total, options_.loop,
                                          scratch.empty() ? std::filesystem::path(".") : scratch);
  width_ = source_->info().width;
  height_ = source_->info().height;
  if (video_hash.valid()) {
    try {
      look_up_avatar_cache(video_hash.get());
    } catch (const Error& e) {  // the decoder will say what is wrong with the file, if anything is
      spdlog::warn("avatar cache not used for {}: {}", files_.video.string(), e.what());
    }
  }
  if (!options_.box && !models_.detector && !cached_faces_)
    throw Error(ErrorCode::internal, "no face detector given and no fixed box set");

  stage.reset();
  stage.emplace(stage_fields("encode"));
  media::VideoWriterOptions writer_options;
  writer_options.width = width_;
  writer_options.height = height_;
  writer_options.fps = fps_;
  writer_options.crf = options_.encode.crf;
  writer_options.preset = options_.encode.preset;
  writer_options.lossless = options_.encode.lossless;
  writer_options.threads = options_.encode.threads > 0 ? options_.encode.threads : threads.encoder;
  writer_options.conversion_threads = threads.encode_conversion;
  writer_options.audio_source = files_.audio;
  media::VideoWriter writer(files_.output, writer_options);
  encoded_width_ = writer.encoded_width();
  encoded_height_ = writer.encoded_height();

  std::thread source_thread([&] { source_stage(); });
  std::thread detect_thread([&] { detect_stage(); });
  std::thread generate_thread([&] { generate_stage(); });
  int64_t done = 0;
  guarded([&] {
    while (auto work = rendered_.pop()) {
      check_cancel();
      encode_one(*work, writer, done);
      encode_clock_.count(1);
      report_progress(++done, false);
    }
  });
  source_thread.join();
  detect_thread.join();
  generate_thread.join();
  latch_.rethrow();
  check_cancel();
  if (done != total)
    throw Error(ErrorCode::internal, "rendered " + std::to_string(done) + " of " + std::to_string(total) + " frames");
  if (hooks_.progress) hooks_.progress({"finalize", done, total, 0, 0});
  encode_clock_.measure([&] { writer.finish(); });
  if (cache_key_ && !cached_faces_) store_avatar_cache(*source_);

  ItemReport report;
  report.frames = done;
  report.frames_without_face = frames_without_face_;
  report.frames_gated = frames_gated_;
  report.frames_restored = frames_restored_;
  report.source_frames = source_->source_frames() > 0 ? source_->source_frames() : done;
  report.width = width_;
  report.height = height_;
  report.fps = fps_.value();
  report.wall_seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  report.stages = {decode_clock_.timing(), detect_clock_.timing(), generate_clock_.timing(), blend_clock_.timing(),
                   encode_clock_.timing()};
  if (models_.restorer) report.stages.push_back(restore_clock_.timing());
  report.frame_path = frame_path_;
  report.avatar_cache = cached_faces_ ? "hit" : reused_frames_ > 0 ? "partial" : cache_key_ ? "miss" : "off";
  return report;
}

}  // namespace

const StageTiming* ItemReport::stage(const std::string& name) const {
  for (const auto& timing : stages)
    if (timing.name == name) return &timing;
  return nullptr;
}

ItemReport run_lip_sync(const ItemFiles& files, const ItemOptions& options, const ItemModels& models,
                        const RunHooks& hooks) {
  if (!models.generator) throw Error(ErrorCode::internal, "run_lip_sync: no generator");
  if (models.restorer && options.box)
    throw Error(ErrorCode::invalid_argument,
                "--enhance aligns each face by the 5 landmarks of the RetinaFace detector; a --box job has none "
                "(drop --box, or --enhance)");
  if (models.restorer && models.detector && models.detector->kind() != "retinaface")
    throw Error(ErrorCode::invalid_argument, "--enhance aligns each face by the 5 landmarks of the RetinaFace detector; " +
                                                 models.detector->kind() + " gives none (use --detector with a retinaface model)");
  LipSyncRun run(files, options, models, hooks);
  return run.run();
}

}  // namespace heygem::pipeline
