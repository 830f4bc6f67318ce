#include "daemon/pipeline/face_restore.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cstring>

#include "daemon/models/face_align.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/warm_batches.hpp"

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

}  // namespace

void restore_faces(const models::GfpganRestorer& restorer, const std::vector<FaceToRestore>& faces, int64_t batch) {
  if (faces.empty()) return;
  if (batch <= 0) batch = models::default_restorer_batch(!restorer.placement().device.is_cpu());
  c10::InferenceMode inference;
  for (std::size_t start = 0; start < faces.size(); start += static_cast<std::size_t>(batch)) {
    const std::size_t end = std::min(faces.size(), start + static_cast<std::size_t>(batch));
    const auto count = static_cast<int64_t>(end - start);
    std::vector<fa::ImageU8> frames;
    std::vector<fa::Affine> inverses;
    at::Tensor crops = at::empty({count, fa::kFaceSize, fa::kFaceSize, 3}, at::kByte);
    for (std::size_t i = start; i < end; ++i) {
      frames.push_back(packed_copy(*faces[i].frame));
      const fa::SimilarityFit fit = fa::align_to_template(faces[i].landmarks);
      inverses.push_back(fa::invert_affine(fit.matrix));
      const fa::ImageU8 crop = fa::warp_face(frames.back(), fit.matrix);
      std::memcpy(crops[static_cast<int64_t>(i - start)].data_ptr<std::uint8_t>(), crop.pixels.data(), crop.pixels.size());
    }
    const at::Tensor restored = models::gfpgan_to_bgr_u8(restorer.restore(restorer.preprocess(crops))).cpu();
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
}

}  // namespace heygem::pipeline
