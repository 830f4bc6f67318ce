#include "daemon/pipeline/face_restore.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstring>

#include "common/errors.hpp"
#include "daemon/models/face_align.hpp"
#include "daemon/models/face_align_device.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/warm_batches.hpp"
#include "daemon/pipeline/device_frames.hpp"

namespace heygem::pipeline {
namespace {

namespace fa = models::face_align;

fa::ImageU8 packed_copy(const media::Frame& frame) {
  fa::ImageU8 image{frame.width, frame.height, 3,
                    std::vector<std::uint8_t>(static_cast<std::size_t>(frame.width) * frame.height * 3)};
  const std::size_t row = static_cast<std::size_t>(frame.width) * 3;
  for (int y = 0; y < frame.height; ++y)
    std::memcpy(image.pixels.data() + y * row, frame.data.data() + static_cast<std::size_t>(y) * frame.stride, row);
  return image;
}

void copy_back(const fa::ImageU8& image, media::Frame& frame) {
  const std::size_t row = static_cast<std::size_t>(frame.width) * 3;
  for (int y = 0; y < frame.height; ++y)
    std::memcpy(frame.data.data() + static_cast<std::size_t>(y) * frame.stride, image.pixels.data() + y * row, row);
}


// CPU restorer: warps, masks and blend with OpenCV's numerics in plain C++ (face_align.hpp).
at::Tensor run_network(const models::GfpganRestorer& restorer, const at::Tensor& crops, const RestoreForward& forward) {
  const at::Tensor input = restorer.preprocess(crops);
  return forward ? forward(input) : restorer.restore(input);
}

void restore_on_cpu(const models::GfpganRestorer& restorer, const std::vector<FaceToRestore>& faces, std::size_t start,
                    std::size_t end, const RestoreForward& forward) {
  const auto count = static_cast<int64_t>(end - start);
  std::vector<fa::ImageU8> frames;
  std::vector<fa::Affine> inverses;
  at::Tensor crops = at::empty({count, fa::kFaceSize, fa::kFaceSize, 3}, at::kByte);
  for (std::size_t i = start; i < end; ++i) {
    if (faces[i].image) throw Error(ErrorCode::internal, "restore_faces: a GPU frame given to the CPU restorer");
    frames.push_back(packed_copy(*faces[i].frame));
    const fa::SimilarityFit fit = fa::align_to_template(faces[i].landmarks);
    inverses.push_back(fa::invert_affine(fit.matrix));
    const fa::ImageU8 crop = fa::warp_face(frames.back(), fit.matrix);
    std::memcpy(crops[static_cast<int64_t>(i - start)].data_ptr<std::uint8_t>(), crop.pixels.data(), crop.pixels.size());
  }
  const at::Tensor restored = models::gfpgan_to_bgr_u8(run_network(restorer, crops, forward)).cpu();
  for (std::size_t i = start; i < end; ++i) {
    const at::Tensor face = restored[static_cast<int64_t>(i - start)];
    fa::ImageU8 face_image{fa::kFaceSize, fa::kFaceSize, 3,
                           std::vector<std::uint8_t>(face.data_ptr<std::uint8_t>(),
                                                     face.data_ptr<std::uint8_t>() + face.numel())};
    fa::ImageU8& frame = frames[i - start];
    fa::paste_face(frame, face_image, inverses[i - start]);
    copy_back(frame, *faces[i].frame);
  }
}

// GPU restorer: each frame goes up once; the warps, masks and blend run there as torch ops with the
// same numerics (face_align_device.hpp), and the finished frame comes back.
void restore_on_device(const models::GfpganRestorer& restorer, const std::vector<FaceToRestore>& faces,
                       std::size_t start, std::size_t end, const RestoreForward& forward) {
  const c10::Device device = restorer.placement().device;
  std::vector<at::Tensor> frames, crops;
  std::vector<fa::Affine> inverses;
  for (std::size_t i = start; i < end; ++i) {
    if (faces[i].image && faces[i].image->device() == device) {
      frames.push_back(*faces[i].image);  // shares the storage: restored in place
    } else {
      media::Frame& frame = *faces[i].frame;
      frames.push_back(at::empty({frame.height, frame.width, 3}, at::TensorOptions().dtype(at::kByte).device(device)));
      frames.back().copy_(frame_view(frame));
    }
    const fa::SimilarityFit fit = fa::align_to_template(faces[i].landmarks);
    inverses.push_back(fa::invert_affine(fit.matrix));
    crops.push_back(fa::warp_face_on_device(frames.back(), fit.matrix));
  }
  const at::Tensor restored = models::gfpgan_to_bgr_u8(run_network(restorer, at::stack(crops), forward));
  for (std::size_t i = start; i < end; ++i) {
    at::Tensor& frame = frames[i - start];
    fa::paste_face_on_device(frame, restored[static_cast<int64_t>(i - start)], inverses[i - start]);
    if (!faces[i].image) frame_view(*faces[i].frame).copy_(frame);
  }
}

}  // namespace

void restore_faces(const models::GfpganRestorer& restorer, const std::vector<FaceToRestore>& faces, int64_t batch,
                   const RestoreForward& forward) {
  if (faces.empty()) return;
  if (batch <= 0) batch = models::default_restorer_batch(!restorer.placement().device.is_cpu());
  c10::InferenceMode inference;
  const bool on_cpu = restorer.placement().device.is_cpu();
  // In the batch sizes the daemon warmed the restorer with (models/warm_batches.hpp), so a short last
  // batch does not pay for new kernels.
  for (std::size_t start = 0; start < faces.size();) {
    const auto left = static_cast<int64_t>(faces.size() - start);
    for (const int64_t piece : models::split_into_warmed_batches(std::min(left, batch), batch)) {
      const std::size_t end = start + static_cast<std::size_t>(piece);
      if (on_cpu)
        restore_on_cpu(restorer, faces, start, end, forward);
      else
        restore_on_device(restorer, faces, start, end, forward);
      start = end;
    }
  }
}

}  // namespace heygem::pipeline
