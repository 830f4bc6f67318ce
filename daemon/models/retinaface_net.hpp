#pragma once
// RetinaFace with the mobilenet0.25 backbone as in biubug6/Face-Detector-1MB-with-landmark
// (models/retinaface.py, models/net.py), module names = the keys of the shipped
// retinaface_mobilenet0.25.pth (300 entries, no "module." prefix). This variant uses plain ReLU
// everywhere (no leaky ReLU) and keeps only the backbone's three stages.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/retinaface.hpp"  // RetinaFaceOutputs

namespace heygem::models {

// MobileNetV1 x0.25 trunk: the outputs of stages 1-3 (strides 8, 16, 32; 64, 128, 256 channels).
class RetinaFaceBody : public torch::nn::Module {
 public:
  RetinaFaceBody();
  std::vector<at::Tensor> forward(const at::Tensor& x);

 private:
  // ModuleLists of Sequential blocks (libtorch cannot nest Sequentials); indices as in the keys.
  torch::nn::ModuleList stage1_{nullptr}, stage2_{nullptr}, stage3_{nullptr};
};

// Feature pyramid: 1x1 lateral convs, nearest upsampling top-down, 3x3 merges.
class RetinaFaceFpn : public torch::nn::Module {
 public:
  RetinaFaceFpn(const std::vector<int64_t>& in_channels, int64_t out_channels);
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& features);

 private:
  torch::nn::Sequential output1_{nullptr}, output2_{nullptr}, output3_{nullptr};
  torch::nn::Sequential merge1_{nullptr}, merge2_{nullptr};
};

// Single-stage headless context module: 3x3, 5x5 and 7x7 receptive fields concatenated.
class RetinaFaceSsh : public torch::nn::Module {
 public:
  RetinaFaceSsh(int64_t in_channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Sequential conv3x3_{nullptr}, conv5x5_1_{nullptr}, conv5x5_2_{nullptr};
  torch::nn::Sequential conv7x7_2_{nullptr}, conv7x7_3_{nullptr};
};

// A 1x1 prediction head: [N, C, H, W] -> [N, H*W*anchors, values_per_anchor].
class RetinaFaceHead : public torch::nn::Module {
 public:
  RetinaFaceHead(int64_t in_channels, int64_t anchors, int64_t values_per_anchor);
  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t values_per_anchor_;
  torch::nn::Conv2d conv1x1_{nullptr};
};

class RetinaFaceNet : public torch::nn::Module {
 public:
  RetinaFaceNet();
  // x: float [N, 3, H, W], BGR minus (104, 117, 123). Test phase: class scores are softmaxed.
  RetinaFaceOutputs forward(const at::Tensor& x);

 private:
  std::shared_ptr<RetinaFaceBody> body_;
  std::shared_ptr<RetinaFaceFpn> fpn_;
  std::shared_ptr<RetinaFaceSsh> ssh1_, ssh2_, ssh3_;
  torch::nn::ModuleList class_heads_{nullptr}, bbox_heads_{nullptr}, landmark_heads_{nullptr};
};

// The empty layout (names, shapes, dtypes in state_dict order) of RetinaFace: 300 entries.
StateDict retinaface_layout();

}  // namespace heygem::models
