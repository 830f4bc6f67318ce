#include "daemon/models/wav2lip.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <set>

#include "common/errors.hpp"
#include "daemon/models/state_dict.hpp"
#include "daemon/models/wav2lip_net.hpp"

namespace heygem::models {
namespace {

constexpr int64_t kMelBins = 80, kMelSteps = 16, kFaceChannels = 6, kFaceSize = 96;

// A checkpoint of another model (S3FD, SyncNet, the discriminator) shares few or no keys with the
// generator; say so instead of reporting one missing key among hundreds.
void check_is_generator(const StateDict& layout, const StateDict& weights, const std::string& source) {
  std::set<std::string> present;
  for (const auto& entry : weights) present.insert(entry.first);
  std::size_t matched = 0;
  const std::string* first_missing = nullptr;
  for (const auto& entry : layout) {
    if (present.count(entry.first)) ++matched;
    else if (!first_missing) first_missing = &entry.first;
  }
  if (first_missing && matched * 2 < layout.size()) {
    std::string holds = weights.empty() ? "no entries" : std::to_string(weights.size()) + " entries, the first " +
                                                               weights.front().first;
    throw Error(ErrorCode::invalid_input,
                source + ": not a Wav2Lip generator checkpoint: missing key " + *first_missing + " (" +
                    std::to_string(matched) + " of " + std::to_string(layout.size()) +
                    " generator keys present; the file holds " + holds + ")");
  }
}

// Parameters keep their dtype but leave autograd; floating tensors take the placement's precision
// (integer buffers such as num_batches_tracked stay int64, as Module.to(dtype) does in Python).
void move_once(Wav2LipNet& net, const Placement& placement) {
  net.to(placement.device);
  for (auto& parameter : net.parameters()) parameter.set_requires_grad(false);
  if (placement.dtype == at::kFloat) return;
  for (auto& parameter : net.parameters()) parameter.set_data(parameter.to(placement.dtype));
  for (auto& buffer : net.buffers())
    if (at::isFloatingType(buffer.scalar_type())) buffer.set_data(buffer.to(placement.dtype));
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (std::size_t i = 0; i < sizes.size(); ++i) text += (i ? "," : "") + std::to_string(sizes[i]);
  return text + "]";
}

void check_input(const at::Tensor& tensor, const char* what, int64_t channels, int64_t height, int64_t width) {
  if (!tensor.defined()) throw Error(ErrorCode::invalid_argument, std::string("wav2lip: ") + what + " is empty");
  const auto sizes = tensor.sizes();
  if (sizes.size() != 4 || sizes[1] != channels || sizes[2] != height || sizes[3] != width || sizes[0] < 1)
    throw Error(ErrorCode::invalid_argument, std::string("wav2lip: ") + what + ": expected [B," +
                                                 std::to_string(channels) + "," + std::to_string(height) + "," +
                                                 std::to_string(width) + "], got " + shape_text(sizes));
  if (!at::isFloatingType(tensor.scalar_type()))
    throw Error(ErrorCode::invalid_argument, std::string("wav2lip: ") + what + ": expected a floating tensor, got " +
                                                 c10::toString(tensor.scalar_type()));
}

// The reference builds its batches from numpy transposes, so both are NHWC-strided (for the 1-channel
// mel: strides (1280, 1, 16, 1)). Convolution kernels are chosen by layout; giving the network the
// same strides reproduces the reference's numbers bit for bit (CPU, same torch build) and costs one
// small copy. contiguous(ChannelsLast) would not restride the 1-channel mel, hence empty_strided.
at::Tensor reference_layout(const at::Tensor& x, const Placement& placement) {
  const auto s = x.sizes();
  const std::vector<int64_t> strides{s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
  if (x.device() == placement.device && x.scalar_type() == placement.dtype && x.strides().equals(strides)) return x;
  return at::empty_strided(s, strides, x.options().device(placement.device).dtype(placement.dtype)).copy_(x);
}

void check_batches(const at::Tensor& mel, const at::Tensor& faces) {
  if (mel.size(0) != faces.size(0))
    throw Error(ErrorCode::invalid_argument, "wav2lip: mel batch " + std::to_string(mel.size(0)) +
                                                 " differs from face batch " + std::to_string(faces.size(0)));
}

}  // namespace

Wav2LipGenerator::Wav2LipGenerator(const StateDict& weights, const Placement& placement, const std::string& source_name)
    : placement_(placement), source_(source_name), net_(std::make_shared<Wav2LipNet>()) {
  check_placement(placement_);
  check_is_generator(module_state_dict(*net_), weights, source_);
  try {
    load_into(*net_, weights, "wav2lip");
  } catch (const Error& error) {
    throw Error(error.code(), source_ + ": " + error.what());
  }
  net_->eval();
  move_once(*net_, placement_);
}

Wav2LipGenerator::~Wav2LipGenerator() = default;

std::unique_ptr<Wav2LipGenerator> Wav2LipGenerator::from_file(const std::filesystem::path& checkpoint,
                                                              const Placement& placement) {
  check_placement(placement);  // before reading 145 MB for nothing
  return std::make_unique<Wav2LipGenerator>(load_state_dict(checkpoint), placement, checkpoint.string());
}

std::unique_ptr<Wav2LipGenerator> Wav2LipGenerator::untrained(const Placement& placement, const HashInitSpec& spec) {
  check_placement(placement);
  return std::make_unique<Wav2LipGenerator>(hash_init(wav2lip_layout(), spec), placement,
                                            "untrained wav2lip (hash-init seed " + std::to_string(spec.seed) + ")");
}

at::Tensor Wav2LipGenerator::audio_embedding(const at::Tensor& mel) const {
  check_input(mel, "mel", 1, kMelBins, kMelSteps);
  c10::InferenceMode inference;
  return net_->encode_audio(reference_layout(mel, placement_)).to(at::kFloat);
}

at::Tensor Wav2LipGenerator::logits(const at::Tensor& mel, const at::Tensor& faces) const {
  check_input(mel, "mel", 1, kMelBins, kMelSteps);
  check_input(faces, "faces", kFaceChannels, kFaceSize, kFaceSize);
  check_batches(mel, faces);
  c10::InferenceMode inference;
  return net_->logits(reference_layout(mel, placement_), reference_layout(faces, placement_))
      .to(at::kFloat);
}

at::Tensor Wav2LipGenerator::generate(const at::Tensor& mel, const at::Tensor& faces) const {
  at::Tensor out = logits(mel, faces);
  c10::InferenceMode inference;
  return out.sigmoid_();
}

Wav2LipTrace Wav2LipGenerator::trace(const at::Tensor& mel, const at::Tensor& faces) const {
  check_input(mel, "mel", 1, kMelBins, kMelSteps);
  check_input(faces, "faces", kFaceChannels, kFaceSize, kFaceSize);
  check_batches(mel, faces);
  c10::InferenceMode inference;
  Wav2LipTrace trace;
  net_->logits(reference_layout(mel, placement_), reference_layout(faces, placement_), &trace);
  trace.audio_embedding = trace.audio_embedding.to(at::kFloat);
  trace.logits = trace.logits.to(at::kFloat);
  for (auto& feat : trace.face_feats) feat = feat.to(at::kFloat);
  return trace;
}

StateDict wav2lip_layout() {
  Wav2LipNet net;
  StateDict layout;
  for (const auto& [name, tensor] : module_state_dict(net))
    layout.emplace_back(name, at::empty(tensor.sizes(), tensor.options()));
  return layout;
}

}  // namespace heygem::models
