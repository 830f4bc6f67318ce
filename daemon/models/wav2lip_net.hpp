#pragma once
// The Wav2Lip generator network (Rudrabha/Wav2Lip models/wav2lip.py, models/conv.py) as torch::nn
// modules. Submodules are registered under the reference's attribute names, so the state dict keys
// (352 entries) and their order equal the official checkpoint's and loading is strictly by name.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <vector>

#include "daemon/models/wav2lip.hpp"

namespace heygem::models {

// Shape of one convolution: kernel, stride and padding as (height, width) pairs.
struct ConvShape {
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t kernel = 3;
  std::vector<int64_t> stride{1, 1};
  int64_t padding = 1;
  int64_t output_padding = 0;  // transposed convolutions only
};

// conv.py Conv2d: conv -> BatchNorm -> (+ input when residual) -> ReLU.
// Keys: conv_block.0.{weight,bias}, conv_block.1.{weight,bias,running_mean,running_var,num_batches_tracked}.
class ConvBnReluImpl : public torch::nn::Module {
 public:
  ConvBnReluImpl(const ConvShape& shape, bool residual);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d norm_{nullptr};
  bool residual_ = false;
};
TORCH_MODULE(ConvBnRelu);

// conv.py Conv2dTranspose: transposed conv -> BatchNorm -> ReLU (same key layout as ConvBnRelu).
class ConvTransposeBnReluImpl : public torch::nn::Module {
 public:
  explicit ConvTransposeBnReluImpl(const ConvShape& shape);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::ConvTranspose2d conv_{nullptr};
  torch::nn::BatchNorm2d norm_{nullptr};
};
TORCH_MODULE(ConvTransposeBnRelu);

// The generator network. Plain torch::nn::Module (held by std::shared_ptr, as torch modules are).
class Wav2LipNet : public torch::nn::Module {
 public:
  Wav2LipNet();

  // mel [B, 1, 80, 16] -> [B, 512, 1, 1]
  at::Tensor encode_audio(const at::Tensor& mel);
  // Logits before the final sigmoid. With `trace`, also records the intermediates.
  at::Tensor logits(const at::Tensor& mel, const at::Tensor& faces, Wav2LipTrace* trace = nullptr);

 private:
  torch::nn::ModuleList face_encoder_blocks_{nullptr};
  torch::nn::Sequential audio_encoder_{nullptr};
  torch::nn::ModuleList face_decoder_blocks_{nullptr};
  torch::nn::Sequential output_block_{nullptr};
  // Typed views of the children above (the containers own them; these keep forward() cheap).
  std::vector<torch::nn::Sequential> encoder_stages_;
  std::vector<torch::nn::Sequential> decoder_stages_;
};

}  // namespace heygem::models
