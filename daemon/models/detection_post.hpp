#pragma once
// Detector post-processing shared by S3FD and RetinaFace: anchors, box decoding, score ordering and
// greedy NMS, reproducing the references' float32 arithmetic (Wav2Lip's sfd/bbox.py and detect.py,
// biubug6's prior_box.py, box_utils.py and py_cpu_nms.py).
//
// Dense work (decoding every anchor, thresholding) stays tensor-based on the tensors' device; only
// the few surviving candidates go to the CPU for the inherently sequential greedy NMS.
#include <ATen/Tensor.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "daemon/models/placement.hpp"

namespace heygem::models::detection {

// ---- Checks shared by the detectors --------------------------------------------------------------

// Throws heygem::Error(invalid_argument) naming `model` unless frames is uint8 [N, H, W, 3] with
// H, W >= min_side.
void check_frames(const at::Tensor& frames, std::string_view model, int64_t min_side);

// Throws heygem::Error(invalid_argument) naming `model` unless the dtype is float32, or float16 /
// bfloat16 on CUDA.
void check_placement(const Placement& placement, std::string_view model);

// Box-encoding variances of both references (centre, size).
// Doubles, like the Python floats the references pass to torch (torch casts them to the tensor's type).
struct Variances {
  double center = 0.1;
  double size = 0.2;
};

// Decodes SSD-style regressions. loc [..., 4] (dx, dy, dw, dh) and priors [..., 4] (cx, cy, w, h),
// broadcastable; float32. Returns corners (x1, y1, x2, y2) in the priors' units, computed in the
// reference's operation order: centre = c + loc*v0*size, size = size*exp(loc*v1), corners from those.
at::Tensor decode_boxes(const at::Tensor& loc, const at::Tensor& priors, Variances variances = {});

// Decodes RetinaFace landmark regressions pre [..., 10] against priors [..., 4]:
// point k = prior centre + pre[2k:2k+2]*v0*prior size.
at::Tensor decode_landmarks(const at::Tensor& pre, const at::Tensor& priors, Variances variances = {});

// ---- S3FD ----------------------------------------------------------------------------------------

// Anchors (cx, cy, w, h) in pixels of one S3FD level, [H*W, 4] row-major: stride s = 2^(level+2),
// centre (s/2 + w*s, s/2 + h*s), square size 4s. `level` counts from 0.
at::Tensor s3fd_level_anchors(int64_t level, int64_t height, int64_t width, const at::TensorOptions& options);

// Every decoded box with face probability strictly above `threshold`, per frame, in the reference's
// order (level by level, row-major). face_prob[i]: [N, H_i, W_i] (softmax channel 1),
// reg[i]: [N, 4, H_i, W_i]. Returns per frame a CPU float32 [K, 5] tensor (x1, y1, x2, y2, score).
std::vector<at::Tensor> s3fd_candidates(const std::vector<at::Tensor>& face_prob,
                                        const std::vector<at::Tensor>& reg, double threshold);

struct S3fdThresholds {
  double candidate = 0.05;  // face probability, strictly greater (torch compares it as float32)
  float nms = 0.3f;         // IoU, suppress when greater (float32)
  double score = 0.5;       // kept after NMS when strictly greater (the reference compares in float64)
};

// One frame's candidates [K, 5] (CPU float32) -> NMS in stable descending score order, then the rows
// with score > thresholds.score, [M, 5] highest score first.
at::Tensor s3fd_select(const at::Tensor& candidates, const S3fdThresholds& thresholds);

// ---- RetinaFace ----------------------------------------------------------------------------------

struct PriorLevel {
  int64_t step;
  std::array<int64_t, 2> min_sizes;
};

// mobilenet0.25's configuration: steps 8, 16, 32 with min sizes (10,20), (32,64), (128,256).
const std::vector<PriorLevel>& retinaface_prior_levels();

// Priors (cx, cy, w, h) normalised by the image size, [A, 4] float32, ordered by level, then cell
// (row-major over ceil(H/step) x ceil(W/step)), then min size; computed in float64 like the reference.
at::Tensor retinaface_priors(int64_t height, int64_t width, const at::TensorOptions& options);

struct RetinaFaceThresholds {
  double confidence = 0.02;  // face probability, strictly greater (torch compares it as float32)
  int64_t top_k = 5000;      // candidates kept before NMS
  float nms = 0.4f;          // IoU, suppress when greater (float32)
  int64_t keep_top_k = 750;  // detections kept after NMS
};

// One frame: boxes [A, 4] and landmarks [A, 10] in pixels, face probabilities [A] (any device,
// float32) -> CPU float32 [M, 15] rows (x1, y1, x2, y2, score, 5 landmark (x, y) pairs), highest
// score first, as detect.py produces them before its vis_thres filter.
at::Tensor retinaface_select(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& landmarks,
                             const RetinaFaceThresholds& thresholds);

// ---- Ordering and NMS (CPU, float32) ------------------------------------------------------------

// Indices of `scores` (CPU float32 [K]) by descending score; equal scores keep ascending index.
std::vector<int64_t> stable_descending_order(const at::Tensor& scores);

// Greedy NMS over CPU float32 boxes [K, >=4] (x1, y1, x2, y2, ...), visiting `order`: areas
// (x2-x1+1)*(y2-y1+1), a box is suppressed when its IoU with a kept one is > iou_threshold, all in
// float32 like the references. Returns the kept indices in visiting order.
std::vector<int64_t> greedy_nms(const at::Tensor& boxes, const std::vector<int64_t>& order, float iou_threshold);

}  // namespace heygem::models::detection
