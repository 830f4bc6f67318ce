#pragma once
// GFPGAN v1.4, clean architecture (TencentARC/GFPGAN gfpgan/archs/gfpganv1_clean_arch.py and
// stylegan2_clean_arch.py), fixed to the configuration GFPGANer builds for arch='clean':
// out_size 512, num_style_feat 512, channel_multiplier 2, num_mlp 8, input_is_latent, different_w,
// narrow 1, sft_half. Submodules carry the reference's attribute names, so the 285 state dict keys and
// their order equal the released GFPGANv1.4.pth (params_ema) and loading is strictly by name.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <vector>

#include "daemon/models/gfpgan.hpp"

namespace heygem::models {

// U-Net residual block: lrelu(conv1) -> resample x2 / x0.5 (bilinear) -> lrelu(conv2), plus a 1x1
// (bias-free) projection of the resampled input.
class GfpganResBlockImpl : public torch::nn::Module {
 public:
  GfpganResBlockImpl(int64_t in_channels, int64_t out_channels, double scale);
  at::Tensor forward(const at::Tensor& x);

 private:
  double scale_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, skip_{nullptr};
};
TORCH_MODULE(GfpganResBlock);

// StyleGAN2 modulated convolution (no bias): the weight [1, out, in, k, k] is scaled per sample by
// the style projected to `in` channels, optionally demodulated, and applied as a grouped convolution.
class ModulatedConvImpl : public torch::nn::Module {
 public:
  ModulatedConvImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, bool demodulate, bool upsample);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& style);

 private:
  int64_t in_channels_, out_channels_, kernel_;
  bool demodulate_, upsample_;
  at::Tensor weight_;
  torch::nn::Linear modulation_{nullptr};
};
TORCH_MODULE(ModulatedConv);

// modulated conv * sqrt(2) + strength * noise + bias, leaky ReLU 0.2.
class StyleConvImpl : public torch::nn::Module {
 public:
  StyleConvImpl(int64_t in_channels, int64_t out_channels, bool upsample);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& style, const at::Tensor& noise);

 private:
  at::Tensor strength_, bias_;
  ModulatedConv conv_{nullptr};
};
TORCH_MODULE(StyleConv);

// 1x1 modulated conv without demodulation + bias, plus the previous RGB skip upsampled x2.
class ToRgbImpl : public torch::nn::Module {
 public:
  ToRgbImpl(int64_t in_channels, bool upsample);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& style, const at::Tensor& skip);

 private:
  bool upsample_;
  at::Tensor bias_;
  ModulatedConv conv_{nullptr};
};
TORCH_MODULE(ToRgb);

// One SFT condition branch (condition_scale.N / condition_shift.N): conv3x3, leaky ReLU 0.2, conv3x3,
// registered as "0" and "2" like the reference's nn.Sequential.
class SftBranchImpl : public torch::nn::Module {
 public:
  explicit SftBranchImpl(int64_t channels);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d first_{nullptr}, second_{nullptr};
};
TORCH_MODULE(SftBranch);

// StyleGAN2GeneratorCSFT with input_is_latent: the style MLP is loaded but not run.
class GfpganDecoder : public torch::nn::Module {
 public:
  GfpganDecoder();
  // latent [B, 16, 512]; conditions: scale/shift per level (14 tensors, scale first).
  at::Tensor forward(const at::Tensor& latent, const std::vector<at::Tensor>& conditions, GfpganTrace* trace);

 private:
  at::Tensor constant_input_;
  StyleConv style_conv1_{nullptr};
  ToRgb to_rgb1_{nullptr};
  std::vector<StyleConv> style_convs_;
  std::vector<ToRgb> to_rgbs_;
  std::vector<at::Tensor> noises_;
};

class GfpganNet : public torch::nn::Module {
 public:
  GfpganNet();
  // x: float [B, 3, 512, 512], RGB in [-1, 1]. Returns the restored image (RGB, unclamped).
  at::Tensor forward(const at::Tensor& x, GfpganTrace* trace = nullptr);

 private:
  torch::nn::Conv2d conv_body_first_{nullptr}, final_conv_{nullptr};
  std::vector<GfpganResBlock> down_, up_;
  torch::nn::Linear final_linear_{nullptr};
  std::shared_ptr<GfpganDecoder> decoder_;
  std::vector<SftBranch> condition_scale_, condition_shift_;
};

}  // namespace heygem::models
