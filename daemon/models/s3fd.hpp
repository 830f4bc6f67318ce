#pragma once
// S3FD face detector (Wav2Lip's face_detection/sfd): network + weights + placement + the reference's
// pre- and post-processing. Preprocessing flips BGR to RGB and subtracts (104, 117, 123) from
// (R, G, B), no resize; candidates are the decoded anchors with face probability > 0.05, then NMS
// 0.3 and score > 0.5. Detections come without landmarks.
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

class S3fdNet;  // torch::nn module, defined in s3fd_net.hpp

// The six detection levels (strides 4 ... 128), raw: classification logits [N, 2, H, W] (channel 1 =
// face; level 1 already max-reduced) and box regressions [N, 4, H, W].
struct S3fdOutputs {
  std::vector<at::Tensor> cls_logits;
  std::vector<at::Tensor> reg;
};

struct S3fdOptions {
  detection::S3fdThresholds thresholds;
};

class S3fdDetector final : public FaceDetector {
 public:
  // Loads weights strictly by name (shape checks, all-or-nothing) and moves them once to `placement`.
  // Throws heygem::Error(invalid_input) naming `source_name` and the cause, or
  // Error(invalid_argument) for an unusable placement.
  S3fdDetector(const StateDict& weights, const Placement& placement, const std::string& source_name,
               S3fdOptions options = {});
  ~S3fdDetector() override;
  S3fdDetector(const S3fdDetector&) = delete;
  S3fdDetector& operator=(const S3fdDetector&) = delete;

  static std::unique_ptr<S3fdDetector> from_file(const std::filesystem::path& checkpoint, const Placement& placement,
                                                 S3fdOptions options = {});

  std::vector<FrameDetections> detect(const at::Tensor& frames_bgr_u8) const override;
  const Placement& placement() const override { return placement_; }
  std::string kind() const override { return "s3fd"; }

  // The stages of detect(), for parity tests and diagnostics.
  // uint8 [N, H, W, 3] BGR -> network input [N, 3, H, W] on the model's device and dtype
  // (channels-last memory, as the reference's numpy transpose hands it to torch).
  at::Tensor preprocess(const at::Tensor& frames_bgr_u8) const;
  S3fdOutputs forward(const at::Tensor& input) const;
  // Softmax over the two classes per level, float32 [N, 2, H, W] (channel 1 = face).
  static std::vector<at::Tensor> class_probabilities(const S3fdOutputs& raw);
  // Per frame: CPU float32 [M, 5] rows (x1, y1, x2, y2, score) after NMS and the score threshold.
  std::vector<at::Tensor> postprocess(const S3fdOutputs& raw) const;

 private:
  Placement placement_;
  S3fdOptions options_;
  std::shared_ptr<S3fdNet> net_;
};

}  // namespace heygem::models
