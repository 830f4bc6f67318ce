#include "daemon/pipeline/face_batch.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "common/errors.hpp"

namespace heygem::pipeline {
namespace {

// Bilinear resize of uint8 HWC pixels with half-pixel centres (cv2.INTER_LINEAR's geometry, no
// antialiasing), rounded back to uint8.
at::Tensor resize_u8(const at::Tensor& hwc_u8, int height, int width) {
  at::Tensor nchw = hwc_u8.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  at::Tensor resized = at::upsample_bilinear2d(nchw, {height, width}, /*align_corners=*/false);
  return resized.round_().clamp_(0, 255).to(at::kByte).squeeze(0).permute({1, 2, 0});
}

// 0 -> 1 raised-cosine ramp of a coordinate t over [start, end].
at::Tensor ramp(const at::Tensor& t, double start, double end) {
  at::Tensor x = ((t - start) / std::max(end - start, 1e-6)).clamp(0.0, 1.0);
  return 0.5 - 0.5 * at::cos(x * M_PI);
}

void check_box(const at::Tensor& frame, const FaceBox& box) {
  const int64_t h = frame.size(0), w = frame.size(1);
  if (box.top < 0 || box.left < 0 || box.bottom > h || box.right > w || box.width() <= 0 || box.height() <= 0)
    throw Error(ErrorCode::invalid_argument,
                "face box (top " + std::to_string(box.top) + ", bottom " + std::to_string(box.bottom) + ", left " +
                    std::to_string(box.left) + ", right " + std::to_string(box.right) + ") is outside the " +
                    std::to_string(w) + "x" + std::to_string(h) + " frame");
}

}  // namespace

BlendMode parse_blend_mode(std::string_view text) {
  if (text == "feather") return BlendMode::feather;
  if (text == "hard") return BlendMode::hard;
  throw Error(ErrorCode::invalid_argument, "blend: expected feather or hard, got '" + std::string(text) + "'");
}

std::string_view to_string(BlendMode mode) { return mode == BlendMode::feather ? "feather" : "hard"; }

at::Tensor make_generator_faces(const std::vector<at::Tensor>& frames, const std::vector<FaceBox>& boxes,
                                int size) {
  if (frames.size() != boxes.size() || frames.empty())
    throw Error(ErrorCode::internal, "make_generator_faces: frames and boxes differ in number or are empty");
  std::vector<at::Tensor> faces;
  faces.reserve(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    check_box(frames[i], boxes[i]);
    const FaceBox& b = boxes[i];
    at::Tensor crop = frames[i].slice(0, b.top, b.bottom).slice(1, b.left, b.right);
    faces.push_back(resize_u8(crop, size, size));
  }
  // uint8 / 255 in float64, then float32: the reference's numpy arithmetic
  at::Tensor full = at::stack(faces).permute({0, 3, 1, 2}).to(at::kDouble).div_(255.0).to(at::kFloat);
  at::Tensor masked = full.clone();
  masked.slice(2, size / 2, size).zero_();
  return at::cat({masked, full}, 1).contiguous();
}

at::Tensor generator_output_to_u8(const at::Tensor& output) {
  // float32 multiply, then truncation toward zero (numpy astype(uint8)); values are in [0, 255]
  return output.to(at::kFloat).mul(255.0f).clamp_(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor feather_mask(int height, int width, const at::TensorOptions& options) {
  auto opts = options.dtype(at::kFloat);
  at::Tensor ys = at::arange(height, opts).add_(0.5).div_(height).unsqueeze(1);  // [h,1] in (0,1)
  at::Tensor xs = at::arange(width, opts).add_(0.5).div_(width).unsqueeze(0);    // [1,w]
  // rows: nothing above the nose, full from mid-face down, fading out at the chin edge
  at::Tensor vertical = ramp(ys, 0.40, 0.62) * (1.0 - ramp(ys, 0.90, 1.0));
  // columns: fade in from both sides so no vertical seam shows
  at::Tensor horizontal = ramp(xs, 0.0, 0.18) * (1.0 - ramp(xs, 0.82, 1.0));
  return (vertical * horizontal).unsqueeze(2);
}

void paste_patch(at::Tensor& frame, const at::Tensor& patch_u8, const FaceBox& box, BlendMode mode) {
  check_box(frame, box);
  at::Tensor resized = resize_u8(patch_u8, box.height(), box.width());
  at::Tensor region = frame.slice(0, box.top, box.bottom).slice(1, box.left, box.right);
  if (mode == BlendMode::hard) {
    region.copy_(resized);
    return;
  }
  at::Tensor mask = feather_mask(box.height(), box.width(), frame.options());
  at::Tensor blended = region.to(at::kFloat) * (1.0 - mask) + resized.to(at::kFloat) * mask;
  region.copy_(blended.round_().clamp_(0, 255).to(at::kByte));
}

}  // namespace heygem::pipeline
