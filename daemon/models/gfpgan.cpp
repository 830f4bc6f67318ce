#include "daemon/models/gfpgan.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <set>
#include <unordered_set>

#include "common/errors.hpp"
#include "daemon/models/gfpgan_net.hpp"
#include "daemon/models/state_dict.hpp"

namespace heygem::models {
namespace {

constexpr int64_t kFaceSize = 512;

// A checkpoint of another model (GFPGANv1 with its compiled-op keys, CodeFormer, a detector) shares
// few keys with the clean arch; say so instead of reporting one missing key among hundreds.
void check_is_gfpgan(const StateDict& layout, const StateDict& weights, const std::string& source) {
  std::set<std::string> present;
  for (const auto& entry : weights) present.insert(entry.first);
  std::size_t matched = 0;
  const std::string* first_missing = nullptr;
  for (const auto& entry : layout) {
    if (present.count(entry.first)) ++matched;
    else if (!first_missing) first_missing = &entry.first;
  }
  if (first_missing && matched * 2 < layout.size()) {
    const std::string holds = weights.empty() ? "no entries"
                                              : std::to_string(weights.size()) + " entries, the first " +
                                                    weights.front().first;
    throw Error(ErrorCode::invalid_input,
                source + ": not a GFPGAN v1.4 (clean) checkpoint: missing key " + *first_missing + " (" +
                    std::to_string(matched) + " of " + std::to_string(layout.size()) +
                    " keys present; the file holds " + holds + ")");
  }
}

void move_once(GfpganNet& net, const Placement& placement) {
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

void check_input(const at::Tensor& input) {
  if (!input.defined()) throw Error(ErrorCode::invalid_argument, "gfpgan: input is empty");
  const auto s = input.sizes();
  if (s.size() != 4 || s[0] < 1 || s[1] != 3 || s[2] != kFaceSize || s[3] != kFaceSize)
    throw Error(ErrorCode::invalid_argument, "gfpgan: input: expected [B,3,512,512], got " + shape_text(s));
  if (!at::isFloatingType(input.scalar_type()))
    throw Error(ErrorCode::invalid_argument,
                "gfpgan: input: expected a floating tensor, got " + std::string(c10::toString(input.scalar_type())));
}

[[noreturn]] void fail(std::string_view name, const std::string& what) {
  throw Error(ErrorCode::invalid_input, std::string(name) + ": " + what);
}

}  // namespace

GfpganRestorer::GfpganRestorer(const StateDict& weights, const Placement& placement, const std::string& source_name)
    : placement_(placement), source_(source_name), net_(std::make_shared<GfpganNet>()) {
  check_placement(placement_);
  check_is_gfpgan(module_state_dict(*net_), weights, source_);
  for (const auto& [name, tensor] : weights)
    if (tensor.scalar_type() != at::kFloat)
      throw Error(ErrorCode::invalid_input, source_ + ": gfpgan: " + name + ": expected float32, got " +
                                                std::string(c10::toString(tensor.scalar_type())));
  try {
    load_into(*net_, weights, "gfpgan");
  } catch (const Error& error) {
    throw Error(error.code(), source_ + ": " + error.what());
  }
  net_->eval();
  move_once(*net_, placement_);
}

GfpganRestorer::~GfpganRestorer() = default;

std::unique_ptr<GfpganRestorer> GfpganRestorer::from_file(const std::filesystem::path& checkpoint,
                                                          const Placement& placement) {
  check_placement(placement);  // before reading 349 MB for nothing
  return std::make_unique<GfpganRestorer>(gfpgan_state_dict_from(read_checkpoint(checkpoint), checkpoint.string()),
                                          placement, checkpoint.string());
}

std::unique_ptr<GfpganRestorer> GfpganRestorer::untrained(const Placement& placement, const HashInitSpec& spec) {
  check_placement(placement);
  return std::make_unique<GfpganRestorer>(hash_init(gfpgan_layout(), spec), placement,
                                          "untrained gfpgan (hash-init seed " + std::to_string(spec.seed) + ")");
}

at::Tensor GfpganRestorer::restore(const at::Tensor& input) const {
  check_input(input);
  c10::InferenceMode inference;
  const at::Tensor x = input.to(placement_.device, placement_.dtype).contiguous();
  return net_->forward(x).to(at::kFloat);
}

GfpganTrace GfpganRestorer::trace(const at::Tensor& input, at::Tensor* output) const {
  check_input(input);
  c10::InferenceMode inference;
  GfpganTrace trace;
  const at::Tensor x = input.to(placement_.device, placement_.dtype).contiguous();
  at::Tensor out = net_->forward(x, &trace).to(at::kFloat);
  if (output) *output = out;
  auto to_float = [](std::vector<at::Tensor>& list) {
    for (auto& t : list) t = t.to(at::kFloat);
  };
  trace.enc_feat = trace.enc_feat.to(at::kFloat);
  trace.latent = trace.latent.to(at::kFloat);
  trace.style_conv1 = trace.style_conv1.to(at::kFloat);
  to_float(trace.sft_scale);
  to_float(trace.sft_shift);
  to_float(trace.style_convs);
  to_float(trace.rgb_skips);
  return trace;
}

at::Tensor GfpganRestorer::preprocess(const at::Tensor& crops_bgr_u8) const {
  const auto s = crops_bgr_u8.sizes();
  if (s.size() != 4 || s[1] != kFaceSize || s[2] != kFaceSize || s[3] != 3 || crops_bgr_u8.scalar_type() != at::kByte)
    throw Error(ErrorCode::invalid_argument, "gfpgan: crops: expected uint8 [B,512,512,3], got " + shape_text(s));
  c10::InferenceMode inference;
  // u8 / 255 in double, rounded once to float32 (img2tensor's float32=True), then normalised in float32.
  at::Tensor x = crops_bgr_u8.to(placement_.device).to(at::kDouble).div_(255.0).to(at::kFloat);
  x = x.flip({3}).permute({0, 3, 1, 2}).contiguous();
  x = x.sub_(0.5).div_(0.5);
  return x.to(placement_.dtype);
}

at::Tensor gfpgan_to_bgr_u8(const at::Tensor& output) {
  c10::InferenceMode inference;
  at::Tensor x = output.to(at::kFloat).clamp(-1.0, 1.0);
  x = x.add(1.0).div_(2.0).mul_(255.0).round_();
  return x.flip({1}).permute({0, 2, 3, 1}).to(at::kByte).contiguous();
}

StateDict gfpgan_state_dict_from(const CheckpointObject& checkpoint, std::string_view name) {
  if (!checkpoint.is<CheckpointDict>())
    fail(name, "checkpoint holds a " + std::string(checkpoint.kind_name()) + ", expected a dict of tensors");
  const CheckpointDict* entries = &checkpoint.as<CheckpointDict>();
  for (const char* key : {"params_ema", "params"}) {
    if (const CheckpointObject* inner = entries->find(key)) {
      if (!inner->is<CheckpointDict>())
        fail(name, std::string(key) + " is a " + std::string(inner->kind_name()) + ", expected a dict of tensors");
      entries = &inner->as<CheckpointDict>();
      break;
    }
  }
  StateDict state;
  std::unordered_set<std::string> seen;
  for (const auto& [key, value] : entries->items) {
    const auto* text = std::get_if<std::string>(&key);
    if (!text) fail(name, "state dict key " + std::to_string(std::get<std::int64_t>(key)) + " is not a string");
    if (!value.is<at::Tensor>())
      fail(name, "state dict entry '" + *text + "' is a " + std::string(value.kind_name()) + ", not a tensor");
    if (!seen.insert(*text).second) fail(name, "duplicate key " + *text);
    state.emplace_back(*text, value.as<at::Tensor>());
  }
  if (state.empty()) fail(name, "checkpoint holds no tensors");
  return state;
}

StateDict gfpgan_layout() {
  GfpganNet net;
  StateDict layout;
  for (const auto& [name, tensor] : module_state_dict(net))
    layout.emplace_back(name, at::empty(tensor.sizes(), tensor.options()));
  return layout;
}

}  // namespace heygem::models
