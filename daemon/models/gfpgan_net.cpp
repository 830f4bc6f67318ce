#include "daemon/models/gfpgan_net.hpp"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/torch.h>

#include <cmath>
#include <string>

namespace heygem::models {
namespace {

namespace F = torch::nn::functional;

constexpr int64_t kOutLog2 = 9;       // out_size 512
constexpr int64_t kStyleFeatures = 512;
constexpr int64_t kStyleMlpLayers = 8;
constexpr double kSlope = 0.2;

// Channel tables of the reference for channel_multiplier 2, narrow 1 (log2 of the resolution -> width).
// The U-Net uses half of the decoder's widths.
int64_t decoder_channels(int64_t log2_resolution) {
  switch (log2_resolution) {
    case 2: case 3: case 4: case 5: case 6: return 512;
    case 7: return 256;
    case 8: return 128;
    case 9: return 64;
    default: return 32;
  }
}
int64_t unet_channels(int64_t log2_resolution) { return decoder_channels(log2_resolution) / 2; }

at::Tensor resample(const at::Tensor& x, double scale) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .scale_factor(std::vector<double>{scale, scale})
                               .mode(torch::kBilinear)
                               .align_corners(false)
                               .recompute_scale_factor(false));  // the kernel gets the factor, as F.interpolate passes it
}

at::Tensor lrelu(const at::Tensor& x) { return at::leaky_relu(x, kSlope); }

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, bool bias = true) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).padding(kernel / 2).bias(bias));
}

}  // namespace

GfpganResBlockImpl::GfpganResBlockImpl(int64_t in_channels, int64_t out_channels, double scale) : scale_(scale) {
  conv1_ = register_module("conv1", conv(in_channels, in_channels, 3));
  conv2_ = register_module("conv2", conv(in_channels, out_channels, 3));
  skip_ = register_module("skip", conv(in_channels, out_channels, 1, /*bias=*/false));
}

at::Tensor GfpganResBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = lrelu(conv1_(x));
  out = resample(out, scale_);
  out = lrelu(conv2_(out));
  return out + skip_(resample(x, scale_));
}

ModulatedConvImpl::ModulatedConvImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, bool demodulate,
                                     bool upsample)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel), demodulate_(demodulate),
      upsample_(upsample) {
  weight_ = register_parameter("weight", at::zeros({1, out_channels, in_channels, kernel, kernel}));
  modulation_ = register_module("modulation", torch::nn::Linear(kStyleFeatures, in_channels));
}

at::Tensor ModulatedConvImpl::forward(const at::Tensor& x, const at::Tensor& style) {
  const int64_t batch = x.size(0);
  // The per-sample weights are formed in float32 whatever the placement's precision (the
  // demodulation's sum of squares and its 1e-8 would underflow in float16), then cast for the conv.
  at::Tensor weight =
      weight_.to(at::kFloat) * modulation_(style).to(at::kFloat).view({batch, 1, in_channels_, 1, 1});
  if (demodulate_) {
    const at::Tensor demod = at::rsqrt(weight.pow(2).sum({2, 3, 4}) + 1e-8);
    weight = weight * demod.view({batch, out_channels_, 1, 1, 1});
  }
  weight = weight.view({batch * out_channels_, in_channels_, kernel_, kernel_}).to(x.scalar_type());
  const at::Tensor input = upsample_ ? resample(x, 2.0) : x;
  const int64_t height = input.size(2), width = input.size(3);
  at::Tensor out = at::conv2d(input.reshape({1, batch * in_channels_, height, width}), weight, {}, 1, kernel_ / 2,
                              1, batch);
  return out.view({batch, out_channels_, out.size(2), out.size(3)});
}

StyleConvImpl::StyleConvImpl(int64_t in_channels, int64_t out_channels, bool upsample) {
  strength_ = register_parameter("weight", at::zeros({1}));
  bias_ = register_parameter("bias", at::zeros({1, out_channels, 1, 1}));
  conv_ = register_module("modulated_conv", ModulatedConv(in_channels, out_channels, 3, true, upsample));
}

at::Tensor StyleConvImpl::forward(const at::Tensor& x, const at::Tensor& style, const at::Tensor& noise) {
  at::Tensor out = conv_(x, style) * std::sqrt(2.0);
  out = out + strength_ * noise;
  out = out + bias_;
  return lrelu(out);
}

ToRgbImpl::ToRgbImpl(int64_t in_channels, bool upsample) : upsample_(upsample) {
  bias_ = register_parameter("bias", at::zeros({1, 3, 1, 1}));
  conv_ = register_module("modulated_conv", ModulatedConv(in_channels, 3, 1, false, false));
}

at::Tensor ToRgbImpl::forward(const at::Tensor& x, const at::Tensor& style, const at::Tensor& skip) {
  at::Tensor out = conv_(x, style) + bias_;
  if (skip.defined()) out = out + (upsample_ ? resample(skip, 2.0) : skip);
  return out;
}

SftBranchImpl::SftBranchImpl(int64_t channels) {
  first_ = register_module("0", conv(channels, channels, 3));
  second_ = register_module("2", conv(channels, channels, 3));  // sft_half: as many outputs as inputs
}

at::Tensor SftBranchImpl::forward(const at::Tensor& x) { return second_(lrelu(first_(x))); }

GfpganDecoder::GfpganDecoder() {
  // Registration order = the reference's attribute order = the state dict order.
  auto style_mlp = std::make_shared<torch::nn::Module>();
  for (int64_t i = 0; i < kStyleMlpLayers; ++i)  // index 0 is NormStyleCode, odd indices the Linears
    style_mlp->register_module(std::to_string(2 * i + 1), torch::nn::Linear(kStyleFeatures, kStyleFeatures));
  register_module("style_mlp", style_mlp);

  auto constant = std::make_shared<torch::nn::Module>();
  constant_input_ = constant->register_parameter("weight", at::zeros({1, decoder_channels(2), 4, 4}));
  register_module("constant_input", constant);

  style_conv1_ = register_module("style_conv1", StyleConv(decoder_channels(2), decoder_channels(2), false));
  to_rgb1_ = register_module("to_rgb1", ToRgb(decoder_channels(2), false));

  torch::nn::ModuleList style_convs, to_rgbs;
  int64_t in_channels = decoder_channels(2);
  for (int64_t level = 3; level <= kOutLog2; ++level) {
    const int64_t out_channels = decoder_channels(level);
    style_convs_.push_back(StyleConv(in_channels, out_channels, true));
    style_convs_.push_back(StyleConv(out_channels, out_channels, false));
    to_rgbs_.push_back(ToRgb(out_channels, true));
    style_convs->push_back(style_convs_[style_convs_.size() - 2]);
    style_convs->push_back(style_convs_.back());
    to_rgbs->push_back(to_rgbs_.back());
    in_channels = out_channels;
  }
  register_module("style_convs", style_convs);
  register_module("to_rgbs", to_rgbs);

  auto noises = std::make_shared<torch::nn::Module>();
  const int64_t layers = (kOutLog2 - 2) * 2 + 1;
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t resolution = int64_t{1} << ((i + 5) / 2);
    noises_.push_back(noises->register_buffer("noise" + std::to_string(i), at::zeros({1, 1, resolution, resolution})));
  }
  register_module("noises", noises);
}

at::Tensor GfpganDecoder::forward(const at::Tensor& latent, const std::vector<at::Tensor>& conditions,
                                  GfpganTrace* trace) {
  const int64_t batch = latent.size(0);
  at::Tensor out = constant_input_.repeat({batch, 1, 1, 1});
  out = style_conv1_(out, latent.select(1, 0), noises_[0]);
  if (trace) trace->style_conv1 = out;
  at::Tensor skip = to_rgb1_(out, latent.select(1, 1), at::Tensor());
  if (trace) trace->rgb_skips.push_back(skip);
  int64_t i = 1;
  for (std::size_t level = 0; level < to_rgbs_.size(); ++level, i += 2) {
    out = style_convs_[2 * level](out, latent.select(1, i), noises_[i]);
    // sft_half: only the second half of the channels is modulated by the U-Net conditions.
    const int64_t half = out.size(1) / 2;
    const at::Tensor same = out.narrow(1, 0, half);
    const at::Tensor sft = out.narrow(1, half, out.size(1) - half) * conditions[i - 1] + conditions[i];
    out = at::cat({same, sft}, 1);
    if (trace) trace->style_convs.push_back(out);
    out = style_convs_[2 * level + 1](out, latent.select(1, i + 1), noises_[i + 1]);
    if (trace) trace->style_convs.push_back(out);
    skip = to_rgbs_[level](out, latent.select(1, i + 2), skip);
    if (trace) trace->rgb_skips.push_back(skip);
  }
  return skip;
}

GfpganNet::GfpganNet() {
  conv_body_first_ = register_module("conv_body_first", conv(3, unet_channels(kOutLog2), 1));
  torch::nn::ModuleList down, up, to_rgb;
  int64_t in_channels = unet_channels(kOutLog2);
  for (int64_t level = kOutLog2; level > 2; --level) {
    const int64_t out_channels = unet_channels(level - 1);
    down_.push_back(GfpganResBlock(in_channels, out_channels, 0.5));
    down->push_back(down_.back());
    in_channels = out_channels;
  }
  register_module("conv_body_down", down);
  final_conv_ = register_module("final_conv", conv(in_channels, unet_channels(2), 3));
  in_channels = unet_channels(2);
  for (int64_t level = 3; level <= kOutLog2; ++level) {
    const int64_t out_channels = unet_channels(level);
    up_.push_back(GfpganResBlock(in_channels, out_channels, 2.0));
    up->push_back(up_.back());
    in_channels = out_channels;
  }
  register_module("conv_body_up", up);
  // The U-Net's own RGB heads (only used in training, return_rgb=True) are part of the state dict.
  for (int64_t level = 3; level <= kOutLog2; ++level) to_rgb->push_back(conv(unet_channels(level), 3, 1));
  register_module("toRGB", to_rgb);
  const int64_t latents = kOutLog2 * 2 - 2;
  final_linear_ = register_module(
      "final_linear", torch::nn::Linear(unet_channels(2) * 4 * 4, latents * kStyleFeatures));
  decoder_ = register_module("stylegan_decoder", std::make_shared<GfpganDecoder>());
  torch::nn::ModuleList scale, shift;
  for (int64_t level = 3; level <= kOutLog2; ++level) {
    condition_scale_.push_back(SftBranch(unet_channels(level)));
    scale->push_back(condition_scale_.back());
  }
  for (int64_t level = 3; level <= kOutLog2; ++level) {
    condition_shift_.push_back(SftBranch(unet_channels(level)));
    shift->push_back(condition_shift_.back());
  }
  register_module("condition_scale", scale);
  register_module("condition_shift", shift);
}

at::Tensor GfpganNet::forward(const at::Tensor& x, GfpganTrace* trace) {
  std::vector<at::Tensor> skips;  // deepest first
  at::Tensor feat = lrelu(conv_body_first_(x));
  for (auto& block : down_) {
    feat = block(feat);
    skips.insert(skips.begin(), feat);
  }
  feat = lrelu(final_conv_(feat));
  const int64_t batch = feat.size(0);
  const at::Tensor latent = final_linear_(feat.reshape({batch, -1})).view({batch, -1, kStyleFeatures});
  if (trace) {
    trace->enc_feat = feat;
    trace->latent = latent;
  }
  std::vector<at::Tensor> conditions;
  for (std::size_t i = 0; i < up_.size(); ++i) {
    feat = feat + skips[i];
    feat = up_[i](feat);
    conditions.push_back(condition_scale_[i](feat));
    conditions.push_back(condition_shift_[i](feat));
    if (trace) {
      trace->sft_scale.push_back(conditions[conditions.size() - 2]);
      trace->sft_shift.push_back(conditions.back());
    }
  }
  return decoder_->forward(latent, conditions, trace);
}

}  // namespace heygem::models
