#include "daemon/pipeline/device_frames.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstring>
#include <string>

#include "common/errors.hpp"

namespace heygem::pipeline {
namespace {

// swscale's x86 4:2:0 -> BGR24 converter (the CPU path's, yuv2rgb_template.c): inputs scaled by 8,
// BT.601 limited-range coefficients in 1/8192, each product floored by a 16-bit shift, the sums
// clamped. Reproducing its integer steps makes the GPU's frames equal the CPU's exactly.
constexpr double kCoefficientScale = 8192.0;
const int64_t kLumaCoefficient = std::llround(255.0 / 219.0 * kCoefficientScale);
const int64_t kRedFromV = std::llround(1.402 * 255.0 / 224.0 * kCoefficientScale);
const int64_t kGreenFromU = -std::llround(0.344136 * 255.0 / 224.0 * kCoefficientScale);
const int64_t kGreenFromV = -std::llround(0.714136 * 255.0 / 224.0 * kCoefficientScale);
const int64_t kBlueFromU = std::llround(1.772 * 255.0 / 224.0 * kCoefficientScale);

// (value * coefficient) >> 16, flooring as the arithmetic shift does
at::Tensor scaled(const at::Tensor& value, int64_t coefficient) {
  return at::div(value * coefficient, 65536, "floor");
}

// swscale's bicubic (B = 0, C = 0.6) at a 2:1 reduction: eight taps around the centre of each pair,
// at distances 0.25, 0.75, 1.25 and 1.75 of the stretched kernel; they sum to one.
constexpr double kChromaTaps[8] = {-0.0140625, -0.0421875, 0.1203125, 0.4359375,
                                   0.4359375,  0.1203125,  -0.0421875, -0.0140625};

at::Tensor to_u8(at::Tensor values) { return values.round_().clamp_(0, 255).to(at::kByte); }

// One axis of [C, H, W] float halved by the bicubic 2:1 filter, edges repeated. Shifted slices
// rather than a convolution: cuDNN may run convolutions in TF32, which moves roundings.
at::Tensor halve_axis(const at::Tensor& planes, int64_t axis) {
  const int64_t size = planes.size(axis), half = size / 2;
  const at::Tensor padded = at::cat({planes.narrow(axis, 0, 1).repeat_interleave(3, axis), planes,
                                     planes.narrow(axis, size - 1, 1).repeat_interleave(4, axis)},
                                    axis);
  at::Tensor sum = at::zeros_like(planes.narrow(axis, 0, half));
  for (int64_t tap = 0; tap < 8; ++tap)
    sum.add_(padded.slice(axis, tap, tap + 2 * (half - 1) + 1, 2), kChromaTaps[tap]);
  return sum;
}

at::Tensor halve(const at::Tensor& planes) { return halve_axis(halve_axis(planes, 2), 1); }

}  // namespace

at::Tensor nv12_to_bgr(const at::Tensor& luma, const at::Tensor& chroma) {
  const int64_t height = luma.size(0), width = luma.size(1);
  const at::Tensor y = scaled(luma.to(at::kInt).mul_(8).sub_(16 * 8), kLumaCoefficient);
  // each chroma sample covers a 2x2 block of luma
  at::Tensor uv = chroma.to(at::kInt).mul_(8).sub_(128 * 8);
  uv = uv.repeat_interleave(2, 0).repeat_interleave(2, 1).narrow(0, 0, height).narrow(1, 0, width);
  const at::Tensor u = uv.select(2, 0), v = uv.select(2, 1);
  const at::Tensor blue = y + scaled(u, kBlueFromU);
  const at::Tensor green = y + scaled(u, kGreenFromU) + scaled(v, kGreenFromV);
  const at::Tensor red = y + scaled(v, kRedFromV);
  return at::stack({blue, green, red}, 2).clamp_(0, 255).to(at::kByte);
}

at::Tensor device_picture_to_bgr(const media::DevicePicture& picture) {
  const auto options = at::TensorOptions().dtype(at::kByte).device(at::kCUDA, picture.device);
  const int64_t chroma_height = (picture.height + 1) / 2, chroma_width = (picture.width + 1) / 2;
  // views over FFmpeg's buffers (no copy): the conversion writes a tensor of its own
  const at::Tensor luma = at::from_blob(const_cast<uint8_t*>(picture.luma), {picture.height, picture.width},
                                        {picture.luma_pitch, 1}, options);
  const at::Tensor chroma = at::from_blob(const_cast<uint8_t*>(picture.chroma), {chroma_height, chroma_width, 2},
                                          {picture.chroma_pitch, 2, 1}, options);
  return nv12_to_bgr(luma, chroma);
}

at::Tensor bgr_to_yuv420(const at::Tensor& bgr, int width, int height) {
  const bool batch = bgr.dim() == 4;
  const at::Tensor frames = batch ? bgr : bgr.unsqueeze(0);
  if (width % 2 != 0 || height % 2 != 0 || width > frames.size(2) || height > frames.size(1))
    throw Error(ErrorCode::internal, "bgr_to_yuv420: " + std::to_string(width) + "x" + std::to_string(height) +
                                         " is odd or larger than the frame");
  const int64_t count = frames.size(0);
  // [N, H, W, 3] -> [3, N, H, W]: the chroma filter works on [C, H, W] planes, here C = 2N
  const at::Tensor pixels = frames.narrow(1, 0, height).narrow(2, 0, width).to(at::kFloat).permute({3, 0, 1, 2});
  const at::Tensor b = pixels[0], g = pixels[1], r = pixels[2];
  // the studio-swing matrix of BT.601 (luma 16..235, chroma 16..240)
  const at::Tensor y = (r * 65.481 + g * 128.553 + b * 24.966).div_(255.0).add_(16.0);
  const at::Tensor u = (r * -37.797 + g * -74.203 + b * 112.0).div_(255.0);
  const at::Tensor v = (r * 112.0 + g * -93.786 + b * -18.214).div_(255.0);
  const at::Tensor chroma = halve(at::stack({u, v}, 1).view({2 * count, height, width})).add_(128.0);
  const at::Tensor planes =
      at::cat({to_u8(y.clone()).view({count, -1}), to_u8(chroma.clone()).view({count, -1})}, 1);
  return batch ? planes : planes[0];
}

media::Yuv420Picture yuv420_picture(const at::Tensor& planes, int width, int height) {
  auto host = std::make_shared<at::Tensor>(planes.to(at::kCPU, at::kByte).contiguous());
  media::Yuv420Picture picture;
  picture.width = width;
  picture.height = height;
  picture.planes = host->data_ptr<uint8_t>();
  picture.size = static_cast<size_t>(host->numel());
  picture.hold = std::move(host);
  return picture;
}

at::Tensor frame_view(media::Frame& frame) {
  return at::from_blob(frame.data.data(), {frame.height, frame.width, 3}, {frame.stride, 3, 1}, at::kByte);
}

media::Frame download_bgr(const at::Tensor& bgr) {
  media::Frame frame;
  frame.resize(static_cast<int>(bgr.size(1)), static_cast<int>(bgr.size(0)));
  at::from_blob(frame.data.data(), {bgr.size(0), bgr.size(1), 3}, at::kByte).copy_(bgr);
  return frame;
}

}  // namespace heygem::pipeline
