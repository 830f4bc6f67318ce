#pragma once
// The face detectors' common interface (RetinaFace mobilenet0.25, S3FD). Input: a batch of frames,
// uint8 [N, H, W, 3] BGR on any device (moved to the model's device inside). Output per frame: the
// detections after thresholds and NMS, highest score first, in the frame's pixel coordinates.
#include <ATen/Tensor.h>

#include <array>
#include <string>
#include <vector>

#include "daemon/models/placement.hpp"

namespace heygem::models {

struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float score = 0;
  bool has_landmarks = false;
  std::array<float, 10> landmarks{};  // RetinaFace: 5 (x, y) pairs; S3FD: none
};

using FrameDetections = std::vector<Detection>;

class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  virtual std::vector<FrameDetections> detect(const at::Tensor& frames_bgr_u8) const = 0;
  virtual const Placement& placement() const = 0;
  virtual std::string kind() const = 0;  // "retinaface" or "s3fd"
};

}  // namespace heygem::models
