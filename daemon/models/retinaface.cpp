#include "daemon/models/retinaface.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "common/errors.hpp"
#include "daemon/models/retinaface_net.hpp"
#include "daemon/models/state_dict.hpp"

namespace heygem::models {
namespace {

constexpr const char* kModel = "retinaface";
constexpr int64_t kMinSide = 16;

FrameDetections to_detections(const at::Tensor& rows, double vis_threshold) {
  FrameDetections out;
  const auto row = rows.accessor<float, 2>();
  for (int64_t i = 0; i < rows.size(0); ++i) {
    if (static_cast<double>(row[i][4]) < vis_threshold) continue;
    Detection detection{row[i][0], row[i][1], row[i][2], row[i][3], row[i][4], true, {}};
    for (int64_t k = 0; k < 10; ++k) detection.landmarks[static_cast<size_t>(k)] = row[i][5 + k];
    out.push_back(detection);
  }
  return out;
}

}  // namespace

RetinaFaceDetector::RetinaFaceDetector(const StateDict& weights, const Placement& placement,
                                       const std::string& source_name, RetinaFaceOptions options)
    : placement_(placement), options_(options), net_(std::make_shared<RetinaFaceNet>()) {
  detection::check_placement(placement_, kModel);
  load_into(*net_, weights, std::string(kModel) + " (" + source_name + ")");
  net_->to(placement_.device, placement_.dtype);
  net_->eval();
}

RetinaFaceDetector::~RetinaFaceDetector() = default;

std::unique_ptr<RetinaFaceDetector> RetinaFaceDetector::from_file(const std::filesystem::path& checkpoint,
                                                                  const Placement& placement,
                                                                  RetinaFaceOptions options) {
  return std::make_unique<RetinaFaceDetector>(load_state_dict(checkpoint), placement, checkpoint.string(), options);
}

at::Tensor RetinaFaceDetector::preprocess(const at::Tensor& frames_bgr_u8) const {
  detection::check_frames(frames_bgr_u8, kModel, kMinSide);
  const auto options = at::TensorOptions().device(placement_.device).dtype(at::kFloat);
  const auto bgr_mean = at::tensor({104.0f, 117.0f, 123.0f}, at::kFloat).to(placement_.device).view({1, 3, 1, 1});
  const auto bgr = frames_bgr_u8.to(placement_.device).permute({0, 3, 1, 2});
  return (bgr.to(options) - bgr_mean).contiguous().to(placement_.dtype);
}

RetinaFaceOutputs RetinaFaceDetector::forward(const at::Tensor& input) const {
  c10::InferenceMode inference;
  return net_->forward(input.to(placement_.device, placement_.dtype).contiguous());
}

RetinaFaceDecoded RetinaFaceDetector::decode(const RetinaFaceOutputs& raw, int64_t height, int64_t width) const {
  c10::InferenceMode inference;
  const auto options = raw.loc.options().dtype(at::kFloat);
  RetinaFaceDecoded out;
  out.priors = detection::retinaface_priors(height, width, options);
  if (raw.loc.dim() != 3 || raw.loc.size(1) != out.priors.size(0))
    throw Error(ErrorCode::internal, "retinaface: the network gave " + std::to_string(raw.loc.size(1)) +
                                         " anchors, the priors of " + std::to_string(width) + "x" +
                                         std::to_string(height) + " are " + std::to_string(out.priors.size(0)));
  const float w = static_cast<float>(width), h = static_cast<float>(height);
  const auto box_scale = at::tensor({w, h, w, h}, at::kFloat).to(options.device());
  const auto point_scale = at::tensor({w, h, w, h, w, h, w, h, w, h}, at::kFloat).to(options.device());
  out.boxes = detection::decode_boxes(raw.loc.to(at::kFloat), out.priors.unsqueeze(0)) * box_scale;
  out.landmarks = detection::decode_landmarks(raw.landmarks.to(at::kFloat), out.priors.unsqueeze(0)) * point_scale;
  out.scores = raw.conf.to(at::kFloat).select(2, 1);
  return out;
}

std::vector<at::Tensor> RetinaFaceDetector::postprocess(const RetinaFaceOutputs& raw, int64_t height,
                                                        int64_t width) const {
  c10::InferenceMode inference;
  const auto decoded = decode(raw, height, width);
  std::vector<at::Tensor> out;
  for (int64_t n = 0; n < decoded.boxes.size(0); ++n)
    out.push_back(detection::retinaface_select(decoded.boxes[n], decoded.scores[n], decoded.landmarks[n],
                                               options_.thresholds));
  return out;
}

std::vector<FrameDetections> RetinaFaceDetector::detect(const at::Tensor& frames_bgr_u8) const {
  detection::check_frames(frames_bgr_u8, kModel, kMinSide);
  if (frames_bgr_u8.size(0) == 0) return {};
  c10::InferenceMode inference;
  const auto raw = forward(preprocess(frames_bgr_u8));
  std::vector<FrameDetections> out;
  for (const auto& rows : postprocess(raw, frames_bgr_u8.size(1), frames_bgr_u8.size(2)))
    out.push_back(to_detections(rows, options_.vis_threshold));
  return out;
}

}  // namespace heygem::models
