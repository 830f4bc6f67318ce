#pragma once
// The face alignment's warps, paste-back masks and blend (face_align.hpp) as torch ops on the
// tensors' device, so that a GPU restorer's frames need not come back to the CPU for them. Same
// numerics as face_align.cpp: OpenCV's fixed-point source positions and 15-bit weights (integer
// ops), the float32 mask warp, the min-filter erosions, the Gaussian blur summed in float64 tap by
// tap in OpenCV's order and the float32 blend truncated to uint8, each an IEEE operation of its
// own, so the result is the CPU path's bit for bit (FaceAlignDevice tests check it on the CPU).
#include <ATen/Tensor.h>

#include "daemon/models/face_align.hpp"

namespace heygem::models::face_align {

// FaceRestoreHelper.align_warp_face: frame uint8 [H, W, 3] BGR on any device -> the 512x512x3 crop on
// that device (border 135, 133, 132).
at::Tensor warp_face_on_device(const at::Tensor& frame_bgr, const Affine& affine);

// FaceRestoreHelper.paste_faces_to_input_image for one face: blends `restored_bgr` (uint8
// [512, 512, 3], the frame's device) into `frame_bgr` (uint8 [H, W, 3], contiguous) in place.
void paste_face_on_device(at::Tensor& frame_bgr, const at::Tensor& restored_bgr, const Affine& inverse_affine);

}  // namespace heygem::models::face_align
