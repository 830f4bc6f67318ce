#include "daemon/models/warm_batches.hpp"
#include "daemon/residency/resident_model.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "common/errors.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/s3fd.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/residency/device_memory.hpp"

namespace heygem::residency {
namespace {

// Generator inputs the pipeline feeds: mel chunks [B, 1, 80, 16], faces [B, 6, 96, 96] in [0, 1].
// Smooth, deterministic patterns (not zeros) so every layer sees non-trivial activations.
at::Tensor warmup_mel(int64_t batch) {
  return at::sin(at::linspace(0, 40, batch * 80 * 16, at::kFloat)).reshape({batch, 1, 80, 16}).mul_(3.0);
}

at::Tensor warmup_faces(int64_t batch) {
  return at::cos(at::linspace(0, 90, batch * 6 * 96 * 96, at::kFloat)).reshape({batch, 6, 96, 96}).mul_(0.5).add_(0.5);
}

// Detector input: uint8 [N, H, W, 3] BGR frames with a gradient pattern.
at::Tensor warmup_frames(int64_t count, int64_t height, int64_t width) {
  return at::arange(count * height * width * 3, at::kLong).remainder_(251).to(at::kByte).reshape({count, height, width, 3});
}

// Parameter + buffer bytes once placed: floating entries take the placement's precision.
std::uint64_t placed_bytes(const models::StateDict& weights, c10::ScalarType dtype) {
  std::uint64_t bytes = 0;
  for (const auto& [name, tensor] : weights) {
    const auto element = at::isFloatingType(tensor.scalar_type()) ? c10::elementSize(dtype) : tensor.element_size();
    bytes += static_cast<std::uint64_t>(tensor.numel()) * element;
  }
  return bytes;
}

// Restorer input: [B, 3, 512, 512] in [-1, 1], a smooth pattern.
at::Tensor warmup_crops(int64_t batch) {
  return at::sin(at::linspace(0, 120, batch * 3 * 512 * 512, at::kFloat)).reshape({batch, 3, 512, 512}).mul_(0.8);
}

constexpr int64_t probe_frame_side = 160;  // heartbeat detector input: one small frame

}  // namespace

std::string to_string(ModelKind kind) {
  switch (kind) {
    case ModelKind::wav2lip: return "wav2lip";
    case ModelKind::s3fd: return "s3fd";
    case ModelKind::retinaface: return "retinaface";
    case ModelKind::gfpgan: return "gfpgan";
  }
  return "unknown";
}

bool is_detector(ModelKind kind) { return kind == ModelKind::s3fd || kind == ModelKind::retinaface; }

ModelRole role_of(ModelKind kind) {
  if (kind == ModelKind::wav2lip) return ModelRole::generator;
  if (kind == ModelKind::gfpgan) return ModelRole::restorer;
  return ModelRole::detector;
}

std::string to_string(ModelRole role) {
  switch (role) {
    case ModelRole::generator: return "generator";
    case ModelRole::detector: return "detector";
    case ModelRole::restorer: return "restorer";
  }
  return "unknown";
}

std::string_view restorer_missing_message() {
  return "--enhance needs the GFPGAN v1.4 weights, and no model of kind gfpgan is configured: bring "
         "GFPGANv1.4.pth (TencentARC/GFPGAN release v1.3.0) and add it to heygemd.yaml under models.entries "
         "as {name: gfpgan, kind: gfpgan, weights: /path/to/GFPGANv1.4.pth}";
}

models::HashInitSpec untrained_generator_spec() { return models::HashInitSpec{1, {{"output_block.1.weight", -9}}}; }

HostWeights read_host_weights(const ModelSpec& spec, const std::string& device) {
  HostWeights host;
  try {
    host.placement = models::parse_placement(device, spec.precision);
  } catch (const Error& error) {
    throw Error(error.code(), "model " + spec.name + ": " + error.what());
  }
  if (spec.weights.empty()) {
    if (spec.kind != ModelKind::wav2lip)
      throw Error(ErrorCode::invalid_argument, "model " + spec.name + ": kind " + to_string(spec.kind) + " needs a weights file");
    host.untrained = true;
    host.device_bytes = placed_bytes(models::wav2lip_layout(), host.placement.dtype);
    return host;
  }
  try {
    host.weights = spec.kind == ModelKind::gfpgan
                       ? models::gfpgan_state_dict_from(models::read_checkpoint(spec.weights), spec.weights.string())
                       : models::load_state_dict(spec.weights);
  } catch (const Error& error) {
    throw Error(error.code(), "model " + spec.name + ": " + error.what());
  }
  host.device_bytes = placed_bytes(host.weights, host.placement.dtype);
  return host;
}

ResidentModel::ResidentModel(const ModelSpec& spec, HostWeights weights)
    : spec_(spec), placement_(weights.placement), untrained_(weights.untrained), parameter_bytes_(weights.device_bytes) {
  const std::string source = spec.weights.string();
  try {
    switch (spec.kind) {
      case ModelKind::wav2lip:
        generator_ = untrained_ ? models::Wav2LipGenerator::untrained(placement_, untrained_generator_spec())
                                : std::make_unique<models::Wav2LipGenerator>(weights.weights, placement_, source);
        source_ = generator_->source();
        break;
      case ModelKind::s3fd:
        s3fd_ = std::make_unique<models::S3fdDetector>(weights.weights, placement_, source);
        source_ = source;
        break;
      case ModelKind::retinaface:
        retinaface_ = std::make_unique<models::RetinaFaceDetector>(weights.weights, placement_, source);
        source_ = source;
        break;
      case ModelKind::gfpgan:
        restorer_ = std::make_unique<models::GfpganRestorer>(weights.weights, placement_, source);
        source_ = source;
        break;
    }
  } catch (const Error& error) {
    throw Error(error.code(), "model " + spec.name + ": " + error.what());
  }
}

ResidentModel::~ResidentModel() = default;

const models::FaceDetector* ResidentModel::detector() const {
  if (s3fd_) return s3fd_.get();
  return retinaface_.get();
}

void ResidentModel::check_finite(const at::Tensor& output, const char* what) const {
  if (!at::isfinite(output).all().item<bool>())
    throw Error(ErrorCode::internal, "model " + spec_.name + ": " + what + " output contains NaN or inf");
}

void ResidentModel::warm_up(const WarmupShapes& shapes) const {
  const c10::InferenceMode inference;
  const auto& device = placement_.device;
  for (int pass = 0; pass < std::max(shapes.passes, 1); ++pass) {
    if (generator_) {
      const int64_t full = shapes.generator_batch > 0 ? shapes.generator_batch : models::default_generator_batch(device.is_cuda());
      // The first pass meets every shape a job's batches are cut into (models/warm_batches.hpp);
      // later passes repeat the full batch only (autotuning and allocator growth).
      const auto sizes = pass == 0 ? models::warmed_batch_sizes(full) : std::vector<int64_t>{full};
      for (const int64_t batch : sizes)
        check_finite(generator_->generate(warmup_mel(batch), warmup_faces(batch)), "warm-up");
    } else if (restorer_) {
      // The batches the enhance stage cuts its faces into (pipeline::restore_faces), as for the generator.
      const int64_t full = shapes.restorer_batch > 0 ? shapes.restorer_batch : models::default_restorer_batch(device.is_cuda());
      const auto sizes = pass == 0 ? models::warmed_batch_sizes(full) : std::vector<int64_t>{full};
      for (const int64_t batch : sizes) check_finite(restorer_->restore(warmup_crops(batch)), "warm-up");
    } else {
      const int64_t batch = shapes.detector_batch > 0 ? shapes.detector_batch : models::default_detector_batch(device.is_cuda());
      // The whole detect() path (pre-processing, network, NMS) at a frame-sized batch.
      detector()->detect(warmup_frames(batch, shapes.frame_height, shapes.frame_width));
    }
  }
  probe_as("warm-up");  // the network's raw outputs must be finite too (detections alone hide NaN scores)
  synchronize(device);
}

void ResidentModel::probe_as(const char* what) const {
  const c10::InferenceMode inference;
  if (generator_) {
    check_finite(generator_->generate(warmup_mel(1), warmup_faces(1)), what);
    return;
  }
  if (restorer_) {
    check_finite(restorer_->restore(warmup_crops(1)), what);
    return;
  }
  const auto frames = warmup_frames(1, probe_frame_side, probe_frame_side);
  if (s3fd_) {
    const auto raw = s3fd_->forward(s3fd_->preprocess(frames));
    for (const auto& level : raw.cls_logits) check_finite(level, what);
    for (const auto& level : raw.reg) check_finite(level, what);
  } else {
    const auto raw = retinaface_->forward(retinaface_->preprocess(frames));
    check_finite(raw.loc, what);
    check_finite(raw.conf, what);
    check_finite(raw.landmarks, what);
  }
}

}  // namespace heygem::residency
