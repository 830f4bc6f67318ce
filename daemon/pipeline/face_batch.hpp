#pragma once
// Tensor work around the generator: cropping faces into its 6-channel input, and turning its output
// back into pixels pasted over the frame. Everything runs on the frames' device (CPU or CUDA).
#include <ATen/Tensor.h>

#include <string_view>
#include <vector>

#include "daemon/pipeline/face_track.hpp"

namespace heygem::pipeline {

enum class BlendMode {
  feather,  // soft mask over the lower face: no visible box edge (default)
  hard,     // the reference's rectangular paste, for parity
};

BlendMode parse_blend_mode(std::string_view text);  // throws heygem::Error(invalid_argument)
std::string_view to_string(BlendMode mode);

// Generator input for a batch: frames are uint8 [H,W,3] BGR; each box is cropped, resized to
// size x size (bilinear, rounded to uint8 like cv2.resize), and stacked as [masked, unmasked] with
// the lower half of the masked copy zeroed. Returns float32 [B,6,size,size] in [0,1].
at::Tensor make_generator_faces(const std::vector<at::Tensor>& frames, const std::vector<FaceBox>& boxes,
                                int size);

// The generator's float output [B,3,S,S] in [0,1] as the reference turns it into pixels:
// x * 255 in float32, truncated to uint8. Returns uint8 [B,S,S,3].
at::Tensor generator_output_to_u8(const at::Tensor& output);

// Resizes one uint8 [S,S,3] patch to the box and writes it into `frame` (uint8 [H,W,3], in place).
void paste_patch(at::Tensor& frame, const at::Tensor& patch_u8, const FaceBox& box, BlendMode mode);

// The feather mask for a box of this size: float32 [h,w,1] in [0,1], 1 over the mouth and chin, 0 at
// the box's border and over the eyes, with smooth (raised-cosine) ramps in between.
at::Tensor feather_mask(int height, int width, const at::TensorOptions& options);

}  // namespace heygem::pipeline
