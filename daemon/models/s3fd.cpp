#include "daemon/models/s3fd.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "daemon/models/s3fd_net.hpp"
#include "daemon/models/state_dict.hpp"

namespace heygem::models {
namespace {

constexpr const char* kModel = "s3fd";
constexpr int64_t kMinSide = 16;  // four 2x2 poolings must leave at least one cell

FrameDetections to_detections(const at::Tensor& rows) {
  FrameDetections out;
  const auto row = rows.accessor<float, 2>();
  for (int64_t i = 0; i < rows.size(0); ++i)
    out.push_back(Detection{row[i][0], row[i][1], row[i][2], row[i][3], row[i][4], false, {}});
  return out;
}

}  // namespace

S3fdDetector::S3fdDetector(const StateDict& weights, const Placement& placement, const std::string& source_name,
                           S3fdOptions options)
    : placement_(placement), options_(options), net_(std::make_shared<S3fdNet>()) {
  detection::check_placement(placement_, kModel);
  load_into(*net_, weights, std::string(kModel) + " (" + source_name + ")");
  net_->to(placement_.device, placement_.dtype);
  net_->eval();
}

S3fdDetector::~S3fdDetector() = default;

std::unique_ptr<S3fdDetector> S3fdDetector::from_file(const std::filesystem::path& checkpoint,
                                                      const Placement& placement, S3fdOptions options) {
  return std::make_unique<S3fdDetector>(load_state_dict(checkpoint), placement, checkpoint.string(), options);
}

at::Tensor S3fdDetector::preprocess(const at::Tensor& frames_bgr_u8) const {
  detection::check_frames(frames_bgr_u8, kModel, kMinSide);
  const auto options = at::TensorOptions().device(placement_.device).dtype(at::kFloat);
  const auto rgb_mean = at::tensor({104.0f, 117.0f, 123.0f}, at::kFloat).to(placement_.device).view({1, 3, 1, 1});
  const auto rgb = frames_bgr_u8.to(placement_.device).permute({0, 3, 1, 2}).flip({1});
  return (rgb.to(options) - rgb_mean).contiguous(at::MemoryFormat::ChannelsLast).to(placement_.dtype);
}

S3fdOutputs S3fdDetector::forward(const at::Tensor& input) const {
  c10::InferenceMode inference;
  return net_->forward(input.to(placement_.device, placement_.dtype));
}

std::vector<at::Tensor> S3fdDetector::class_probabilities(const S3fdOutputs& raw) {
  std::vector<at::Tensor> out;
  for (const auto& logits : raw.cls_logits) out.push_back(at::softmax(logits.to(at::kFloat), 1));
  return out;
}

std::vector<at::Tensor> S3fdDetector::postprocess(const S3fdOutputs& raw) const {
  c10::InferenceMode inference;
  std::vector<at::Tensor> face_prob, reg;
  for (const auto& probs : class_probabilities(raw)) face_prob.push_back(probs.select(1, 1));
  for (const auto& offsets : raw.reg) reg.push_back(offsets.to(at::kFloat));
  std::vector<at::Tensor> out;
  for (const auto& candidates : detection::s3fd_candidates(face_prob, reg, options_.thresholds.candidate))
    out.push_back(detection::s3fd_select(candidates, options_.thresholds));
  return out;
}

std::vector<FrameDetections> S3fdDetector::detect(const at::Tensor& frames_bgr_u8) const {
  detection::check_frames(frames_bgr_u8, kModel, kMinSide);
  if (frames_bgr_u8.size(0) == 0) return {};
  c10::InferenceMode inference;
  std::vector<FrameDetections> out;
  for (const auto& rows : postprocess(forward(preprocess(frames_bgr_u8)))) out.push_back(to_detections(rows));
  return out;
}

}  // namespace heygem::models
