#pragma once
// The GPU frame path's colour conversions, as torch ops on whatever device the tensors live on (the
// tests run them on the CPU against swscale, the daemon on the GPU). NVDEC's NV12 pictures become
// BGR frames on the GPU, where detection, crops, generation and paste-back happen; finished frames
// become the encoder's YUV 4:2:0 there too, so a frame crosses the bus once, as 1.5 bytes a pixel.
// The numerics follow what the CPU path asks swscale for (BT.601 limited range both ways): on the
// way in, the integer steps of swscale's x86 4:2:0 -> BGR24 converter (chroma repeated over each 2x2
// block), so the frames equal the CPU path's; on the way out swscale's bicubic 2:1 chroma filter
// (B = 0, C = 0.6, edges repeated) in float, within a level of its fixed point
// (tests/pipeline/device_frames_test.cpp).
#include <ATen/Tensor.h>

#include "daemon/media/media_types.hpp"

namespace heygem::pipeline {

// NV12 planes -> BGR uint8 [H, W, 3], on the planes' device. `luma`: uint8 [H, W]; `chroma`: uint8
// [ceil(H/2), ceil(W/2), 2] (U, V interleaved). Strided views are fine.
at::Tensor nv12_to_bgr(const at::Tensor& luma, const at::Tensor& chroma);

// An NVDEC picture converted into a new BGR uint8 [H, W, 3] tensor on its GPU. The picture's buffer
// can be let go of as soon as this returns (the conversion is queued on the stream NVDEC copies on).
at::Tensor device_picture_to_bgr(const media::DevicePicture& picture);

// BGR uint8 [H, W, 3] -> the encoder's YUV 4:2:0 planes (Y, U, V packed, flat uint8) of its top-left
// `width` x `height` (both even), on the frame's device. A batch [N, H, W, 3] gives [N, planes].
at::Tensor bgr_to_yuv420(const at::Tensor& bgr, int width, int height);

// The planes of bgr_to_yuv420 as the writer's picture: a view of a contiguous host tensor (which the
// picture keeps alive), else one copy to the host first.
media::Yuv420Picture yuv420_picture(const at::Tensor& planes, int width, int height);

// A host Frame's pixels as a strided uint8 [H, W, 3] view (no copy): valid while the Frame lives.
at::Tensor frame_view(media::Frame& frame);

// A BGR uint8 [H, W, 3] tensor (any device) as a packed host Frame.
media::Frame download_bgr(const at::Tensor& bgr);

}  // namespace heygem::pipeline
