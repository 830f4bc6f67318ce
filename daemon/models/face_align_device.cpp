#include "daemon/models/face_align_device.hpp"

#include <ATen/ATen.h>

#include <limits>
#include <stdexcept>
#include <vector>

namespace heygem::models::face_align {
namespace {

// OpenCV's fixed-point source positions of the destination pixels of `area`, as for_each_tap in
// face_align.cpp computes them: integer pixel (sx, sy) and 1/32 fractions (fx, fy), int64 [h, w].
struct Taps {
  at::Tensor sx, sy, fx, fy;
};

Taps taps_of(const Affine& m, Rect area, const at::Device& device) {
  const Affine inv = invert_affine(m);
  const auto f64 = at::TensorOptions().dtype(at::kDouble).device(device);
  const at::Tensor xs = at::arange(area.x0, area.x1, f64), ys = at::arange(area.y0, area.y1, f64);
  // std::nearbyint and at::round both round half to even: the same integers as cv_round.
  const at::Tensor adelta = xs.mul(inv[0]).mul(1024).round().to(at::kLong);
  const at::Tensor bdelta = xs.mul(inv[3]).mul(1024).round().to(at::kLong);
  const at::Tensor x0 = ys.mul(inv[1]).add(inv[2]).mul(1024).round().to(at::kLong).add(16);
  const at::Tensor y0 = ys.mul(inv[4]).add(inv[5]).mul(1024).round().to(at::kLong).add(16);
  // >> 5 of a possibly negative int is a floor division by 32
  const at::Tensor X = at::div(x0.unsqueeze(1) + adelta.unsqueeze(0), 32, "floor");
  const at::Tensor Y = at::div(y0.unsqueeze(1) + bdelta.unsqueeze(0), 32, "floor");
  Taps t;
  t.sx = at::div(X, 32, "floor");
  t.sy = at::div(Y, 32, "floor");
  t.fx = X - t.sx * 32;
  t.fy = Y - t.sy * 32;
  return t;
}

// The 4 bilinear neighbours of each tap: values of `src` ([H, W, C] or [H, W]) where inside, and
// whether they are.
struct Neighbour {
  at::Tensor value, inside;
};

Neighbour neighbour(const at::Tensor& src, const Taps& t, int k) {
  const int64_t height = src.size(0), width = src.size(1);
  const at::Tensor sx = t.sx + (k & 1), sy = t.sy + (k >> 1);
  const at::Tensor inside = sx.ge(0).logical_and(sy.ge(0)).logical_and(sx.lt(width)).logical_and(sy.lt(height));
  const at::Tensor index = sy.clamp(0, height - 1) * width + sx.clamp(0, width - 1);
  const at::Tensor flat = src.reshape({height * width, -1});
  const at::Tensor value = flat.index_select(0, index.reshape({-1})).reshape({t.sx.size(0), t.sx.size(1), flat.size(1)});
  return {value, inside.unsqueeze(2)};
}

// warp_affine_u8: 15-bit integer weights, rounded shift.
at::Tensor warp_u8(const at::Tensor& src, const Affine& m, Rect area, const std::vector<int>& border) {
  const Taps t = taps_of(m, area, src.device());
  const at::Tensor fx = t.fx.unsqueeze(2), fy = t.fy.unsqueeze(2);
  at::Tensor w[4] = {(32 - fy) * (32 - fx) * 32, (32 - fy) * fx * 32, fy * (32 - fx) * 32, fy * fx * 32};
  w[0] = w[0].clamp_max(32767);  // the full weight 32768 does not fit OpenCV's short table
  const at::Tensor fill =
      at::tensor(std::vector<int64_t>(border.begin(), border.end()), at::TensorOptions().dtype(at::kLong)).to(src.device());
  const at::Tensor values = src.to(at::kLong);
  at::Tensor acc = at::zeros({area.height(), area.width(), src.size(2)}, values.options());
  for (int k = 0; k < 4; ++k) {
    const Neighbour n = neighbour(values, t, k);
    acc += w[k] * at::where(n.inside, n.value, fill);
  }
  return at::div(acc + 16384, 32768, "floor").clamp(0, 255).to(at::kByte);
}

// warp_affine_f32 of an all-ones face_size square: float32 weights summed in OpenCV's order.
at::Tensor warp_ones_f32(int face_size, const Affine& m, Rect area, const at::Device& device) {
  const Taps t = taps_of(m, area, device);
  const at::Tensor fx = t.fx.to(at::kFloat).mul(1.0f / 32), fy = t.fy.to(at::kFloat).mul(1.0f / 32);
  const at::Tensor one_fx = 1.0f - fx, one_fy = 1.0f - fy;
  const at::Tensor w[4] = {one_fy * one_fx, one_fy * fx, fy * one_fx, fy * fx};
  at::Tensor acc = at::zeros({area.height(), area.width()}, fx.options());
  for (int k = 0; k < 4; ++k) {
    const at::Tensor sx = t.sx + (k & 1), sy = t.sy + (k >> 1);
    const at::Tensor inside = sx.ge(0).logical_and(sy.ge(0)).logical_and(sx.lt(face_size)).logical_and(sy.lt(face_size));
    acc = acc + inside.to(at::kFloat) * w[k];
  }
  return acc;
}

// The frame coordinates lo..hi-1 along one axis, for filling what lies around `area`: +inf outside the
// frame (the erosion ignores it), 0 inside the frame (the mask's surroundings).
at::Tensor border_fill(int64_t from, int64_t count, int64_t frame_size, const at::Device& device) {
  const at::Tensor coordinates = at::arange(from, from + count, at::TensorOptions().dtype(at::kLong).device(device));
  const at::Tensor outside = coordinates.lt(0).logical_or(coordinates.ge(frame_size));
  return at::where(outside, at::full({}, std::numeric_limits<float>::infinity(), at::TensorOptions().device(device)),
                   at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device)));
}

// min_filter of face_align.cpp along one axis (dim 1 = horizontal), offsets lo..hi.
at::Tensor min_filter(const at::Tensor& src, Rect area, int frame_w, int frame_h, int lo, int hi, bool horizontal) {
  const at::Device device = src.device();
  at::Tensor image = horizontal ? src : src.t();
  const int64_t length = image.size(1), lines = image.size(0);
  const int64_t start = horizontal ? area.x0 : area.y0, frame_size = horizontal ? frame_w : frame_h;
  const at::Tensor before = border_fill(start + lo, -lo, frame_size, device).expand({lines, -lo});
  const at::Tensor after = border_fill(start + length, hi, frame_size, device).expand({lines, hi});
  const at::Tensor padded = at::cat({before, image, after}, 1);
  const at::Tensor out = padded.unfold(1, hi - lo + 1, 1).amin(2);
  return horizontal ? out.contiguous() : out.t().contiguous();
}

int reflect101(int p, int size) {
  if (size == 1) return 0;
  while (p < 0 || p >= size) p = p < 0 ? -p : 2 * size - 2 - p;
  return p;
}

// For output positions area_start - r .. area_start + length + r - 1 of one axis: the local index of
// their BORDER_REFLECT_101 position inside the area, or `length` (a zero line) outside it.
at::Tensor reflected_lines(int64_t area_start, int64_t length, int r, int frame_size, const at::Device& device) {
  std::vector<int64_t> index(static_cast<std::size_t>(length + 2 * r));
  for (int64_t i = 0; i < length + 2 * r; ++i) {
    const int64_t local = reflect101(static_cast<int>(area_start - r + i), frame_size) - area_start;
    index[static_cast<std::size_t>(i)] = local >= 0 && local < length ? local : length;
  }
  return at::tensor(index, at::TensorOptions().dtype(at::kLong)).to(device);
}

// cv::GaussianBlur(src, (k, k), 0): rows then columns, float64 sums tap by tap, float32 result.
at::Tensor gaussian_blur(const at::Tensor& src, Rect area, int frame_w, int frame_h, int ksize) {
  const int r = ksize / 2;
  const std::vector<double> kernel = gaussian_kernel(ksize);
  const int64_t h = src.size(0), w = src.size(1);
  const at::Tensor values = src.to(at::kDouble);
  // Horizontal pass over the area's rows (rows outside it are all zero).
  const at::Tensor with_zero_column = at::cat({values, at::zeros({h, 1}, values.options())}, 1);
  const at::Tensor columns = with_zero_column.index_select(1, reflected_lines(area.x0, w, r, frame_w, src.device()));
  at::Tensor horizontal = at::zeros({h, w}, values.options());
  for (int k = 0; k < ksize; ++k) horizontal = horizontal + columns.narrow(1, k, w) * kernel[static_cast<std::size_t>(k)];
  // Vertical pass.
  const at::Tensor with_zero_row = at::cat({horizontal, at::zeros({1, w}, values.options())}, 0);
  const at::Tensor rows = with_zero_row.index_select(0, reflected_lines(area.y0, h, r, frame_h, src.device()));
  at::Tensor out = at::zeros({h, w}, values.options());
  for (int k = 0; k < ksize; ++k) out = out + rows.narrow(0, k, h) * kernel[static_cast<std::size_t>(k)];
  return out.to(at::kFloat);
}

}  // namespace

at::Tensor warp_face_on_device(const at::Tensor& frame_bgr, const Affine& affine) {
  if (frame_bgr.dim() != 3 || frame_bgr.size(2) != 3 || frame_bgr.scalar_type() != at::kByte)
    throw std::invalid_argument("warp_face_on_device: a uint8 [H, W, 3] frame is expected");
  return warp_u8(frame_bgr, affine, Rect{0, 0, kFaceSize, kFaceSize}, {135, 133, 132});
}

void paste_face_on_device(at::Tensor& frame_bgr, const at::Tensor& restored_bgr, const Affine& inverse_affine) {
  if (frame_bgr.dim() != 3 || frame_bgr.size(2) != 3 || frame_bgr.scalar_type() != at::kByte || !frame_bgr.is_contiguous())
    throw std::invalid_argument("paste_face_on_device: a contiguous uint8 [H, W, 3] frame is expected");
  const int face_size = static_cast<int>(restored_bgr.size(0));
  const int frame_w = static_cast<int>(frame_bgr.size(1)), frame_h = static_cast<int>(frame_bgr.size(0));
  const at::Device device = frame_bgr.device();

  const Rect face_area = paste_reach(inverse_affine, face_size, frame_w, frame_h);
  const at::Tensor warped_ones = warp_ones_f32(face_size, inverse_affine, face_area, device);
  // erode(ones(2, 2)): min over x-1..x, y-1..y
  const at::Tensor erosion = min_filter(min_filter(warped_ones, face_area, frame_w, frame_h, -1, 0, true), face_area,
                                        frame_w, frame_h, -1, 0, false);
  const int w = paste_edge(erosion.to(at::kDouble).sum().item<double>());
  const Rect area = widen_in_frame(face_area, w + 2, frame_w, frame_h);
  at::Tensor grown = at::zeros({area.height(), area.width()}, erosion.options());
  grown.narrow(0, face_area.y0 - area.y0, face_area.height())
      .narrow(1, face_area.x0 - area.x0, face_area.width())
      .copy_(erosion);
  at::Tensor soft = grown;
  if (w > 0) {
    const at::Tensor center = min_filter(min_filter(grown, area, frame_w, frame_h, -w, w - 1, true), area, frame_w,
                                         frame_h, -w, w - 1, false);
    soft = gaussian_blur(center, area, frame_w, frame_h, 2 * w + 1);
  }
  const at::Tensor face = warp_u8(restored_bgr, inverse_affine, area, {0, 0, 0}).to(at::kFloat);
  at::Tensor region = frame_bgr.narrow(0, area.y0, area.height()).narrow(1, area.x0, area.width());
  const at::Tensor s = soft.unsqueeze(2), e = grown.unsqueeze(2);
  const at::Tensor value = s * (e * face) + (1.0f - s) * region.to(at::kFloat);
  region.copy_(value.clamp(0.0f, 255.0f).to(at::kByte));  // truncation, as astype(uint8)
}

}  // namespace heygem::models::face_align
