#pragma once
// S3FD as shipped in Wav2Lip's face_detection (sfd/net_s3fd.py), module names = the official
// state_dict keys (65 entries). Quirks kept on purpose: fc6 has padding 3 and no dilation (so the
// stride-32 level is larger than the decoder assumes), three L2Norm layers divide by
// (sqrt(sum_c x^2) + 1e-10), and level 1 predicts 4 classes whose first three are max-reduced into
// one background logit.
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <string>
#include <vector>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/s3fd.hpp"  // S3fdOutputs

namespace heygem::models {

// Per-channel learned scale after an L2 normalisation over channels.
class S3fdL2Norm : public torch::nn::Module {
 public:
  explicit S3fdL2Norm(int64_t channels);
  at::Tensor forward(const at::Tensor& x) const;

 private:
  at::Tensor weight_;
};

class S3fdNet : public torch::nn::Module {
 public:
  static constexpr int kLevels = 6;

  S3fdNet();
  // x: float [N, 3, H, W], RGB minus (104, 117, 123).
  S3fdOutputs forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                         int64_t padding);

  torch::nn::Conv2d conv1_1_{nullptr}, conv1_2_{nullptr}, conv2_1_{nullptr}, conv2_2_{nullptr};
  torch::nn::Conv2d conv3_1_{nullptr}, conv3_2_{nullptr}, conv3_3_{nullptr};
  torch::nn::Conv2d conv4_1_{nullptr}, conv4_2_{nullptr}, conv4_3_{nullptr};
  torch::nn::Conv2d conv5_1_{nullptr}, conv5_2_{nullptr}, conv5_3_{nullptr};
  torch::nn::Conv2d fc6_{nullptr}, fc7_{nullptr};
  torch::nn::Conv2d conv6_1_{nullptr}, conv6_2_{nullptr}, conv7_1_{nullptr}, conv7_2_{nullptr};
  std::shared_ptr<S3fdL2Norm> conv3_3_norm_, conv4_3_norm_, conv5_3_norm_;
  std::vector<torch::nn::Conv2d> conf_heads_, loc_heads_;  // one per level
};

// The empty layout (names, shapes, dtypes in state_dict order) of S3FD: 65 entries.
StateDict s3fd_layout();

}  // namespace heygem::models
