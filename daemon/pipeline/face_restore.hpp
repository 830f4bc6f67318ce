#pragma once
// The face restoration stage (--enhance): after the mouth is pasted, every face is aligned by its 5
// detector landmarks to the FFHQ template (512x512), restored by GFPGAN v1.4 in batches and pasted
// back with facexlib's soft mask (models/face_align.hpp), as HeyGem orders it. With a CPU restorer
// the warps, masks and blend are face_align.cpp's OpenCV numerics; with a GPU restorer the same
// numerics run as torch ops on its device (face_align_device.hpp), so a frame crosses the bus once
// each way.
#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "daemon/media/media_types.hpp"

namespace at {
class Tensor;
}
namespace heygem::models {
class GfpganRestorer;
}

namespace heygem::pipeline {

struct FaceToRestore {
  media::Frame* frame = nullptr;
  std::array<float, 10> landmarks{};  // left eye, right eye, nose, mouth corners: (x, y) in frame pixels
  // On the GPU frame path: the frame as BGR uint8 [H, W, 3] on the restorer's GPU, restored in place
  // (`frame` holds no pixels then).
  at::Tensor* image = nullptr;
};

// The network call: preprocessed crops [N, 3, 512, 512] -> restored [N, 3, 512, 512]. The daemon's
// runs on the device's forward queue (batched with other items'); empty = restorer.restore() here.
using RestoreForward = std::function<at::Tensor(const at::Tensor& crops)>;

// Restores every face in place, `batch` crops per network call (0 = the device default,
// models/warm_batches.hpp).
// Throws heygem::Error from the network.
void restore_faces(const models::GfpganRestorer& restorer, const std::vector<FaceToRestore>& faces, int64_t batch = 0,
                   const RestoreForward& forward = {});

}  // namespace heygem::pipeline
