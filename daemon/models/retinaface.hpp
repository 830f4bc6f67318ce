#pragma once
// RetinaFace mobilenet0.25 face detector (biubug6/Face-Detector-1MB-with-landmark): network + weights
// + placement + the reference detect.py's pre- and post-processing at origin size: BGR minus
// (104, 117, 123), no resize; priors, decode with variances (0.1, 0.2), face probability > 0.02,
// top 5000, NMS 0.4, keep 750. detect() then keeps the faces with score >= vis_threshold (0.6, the
// script's vis_thres), highest score first, each with its 5 landmarks.
#include <ATen/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/detection_post.hpp"
#include "daemon/models/face_detector.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models {

class RetinaFaceNet;  // torch::nn module, defined in retinaface_net.hpp

// Raw network outputs over all A anchors: box regressions [N, A, 4], class probabilities [N, A, 2]
// (float32, softmaxed as in the reference's test phase; column 1 = face), landmark regressions [N, A, 10].
struct RetinaFaceOutputs {
  at::Tensor loc;
  at::Tensor conf;
  at::Tensor landmarks;
};

// Every anchor decoded to pixels: priors [A, 4] (normalised cx, cy, w, h), boxes [N, A, 4],
// landmarks [N, A, 10], face probabilities [N, A]; float32 on the model's device.
struct RetinaFaceDecoded {
  at::Tensor priors;
  at::Tensor boxes;
  at::Tensor landmarks;
  at::Tensor scores;
};

struct RetinaFaceOptions {
  detection::RetinaFaceThresholds thresholds;
  double vis_threshold = 0.6;  // detect() keeps score >= this (compared in float64 like the script)
};

class RetinaFaceDetector final : public FaceDetector {
 public:
  // Loads weights strictly by name (shape checks, all-or-nothing) and moves them once to `placement`.
  // Throws heygem::Error(invalid_input) naming `source_name` and the cause, or
  // Error(invalid_argument) for an unusable placement.
  RetinaFaceDetector(const StateDict& weights, const Placement& placement, const std::string& source_name,
                     RetinaFaceOptions options = {});
  ~RetinaFaceDetector() override;
  RetinaFaceDetector(const RetinaFaceDetector&) = delete;
  RetinaFaceDetector& operator=(const RetinaFaceDetector&) = delete;

  static std::unique_ptr<RetinaFaceDetector> from_file(const std::filesystem::path& checkpoint,
                                                       const Placement& placement, RetinaFaceOptions options = {});

  std::vector<FrameDetections> detect(const at::Tensor& frames_bgr_u8) const override;
  const Placement& placement() const override { return placement_; }
  std::string kind() const override { return "retinaface"; }
  const RetinaFaceOptions& options() const { return options_; }

  // The stages of detect(), for parity tests and diagnostics.
  // uint8 [N, H, W, 3] BGR -> network input [N, 3, H, W] (BGR minus the means) on the model's device/dtype.
  at::Tensor preprocess(const at::Tensor& frames_bgr_u8) const;
  RetinaFaceOutputs forward(const at::Tensor& input) const;
  // Decodes every anchor of an input of height x width pixels.
  RetinaFaceDecoded decode(const RetinaFaceOutputs& raw, int64_t height, int64_t width) const;
  // Per frame: CPU float32 [M, 15] rows (x1, y1, x2, y2, score, 5 landmark (x, y) pairs) after the
  // confidence threshold, top_k, NMS and keep_top_k; the vis threshold is not applied here.
  std::vector<at::Tensor> postprocess(const RetinaFaceOutputs& raw, int64_t height, int64_t width) const;

 private:
  Placement placement_;
  RetinaFaceOptions options_;
  std::shared_ptr<RetinaFaceNet> net_;
};

}  // namespace heygem::models
