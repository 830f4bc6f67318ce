#include "daemon/models/wav2lip_net.hpp"

#include <ATen/ATen.h>

#include <utility>

namespace heygem::models {
namespace {

// One reference Conv2d(cin, cout, kernel_size, stride, padding[, residual]) line.
struct Layer {
  ConvShape shape;
  bool residual = false;
};

Layer conv(int64_t cin, int64_t cout, int64_t kernel, std::vector<int64_t> stride, int64_t padding) {
  return Layer{ConvShape{cin, cout, kernel, std::move(stride), padding, 0}, false};
}
Layer conv(int64_t cin, int64_t cout, int64_t kernel, int64_t stride, int64_t padding) {
  return conv(cin, cout, kernel, {stride, stride}, padding);
}
// The shape-preserving residual block the reference repeats everywhere: 3x3, stride 1, padding 1.
Layer residual(int64_t channels) {
  return Layer{ConvShape{channels, channels, 3, {1, 1}, 1, 0}, true};
}
// Conv2dTranspose(cin, cout, 3, stride, padding, output_padding).
ConvShape up(int64_t cin, int64_t cout, int64_t stride, int64_t padding, int64_t output_padding) {
  return ConvShape{cin, cout, 3, {stride, stride}, padding, output_padding};
}

torch::nn::Sequential sequence_of(const std::vector<Layer>& layers) {
  torch::nn::Sequential sequence;
  for (const Layer& layer : layers) sequence->push_back(ConvBnRelu(layer.shape, layer.residual));
  return sequence;
}

torch::nn::Sequential upsampling_sequence(const ConvShape& first, const std::vector<Layer>& rest) {
  torch::nn::Sequential sequence;
  sequence->push_back(ConvTransposeBnRelu(first));
  for (const Layer& layer : rest) sequence->push_back(ConvBnRelu(layer.shape, layer.residual));
  return sequence;
}

// models/wav2lip.py face_encoder_blocks: 96 -> 48 -> 24 -> 12 -> 6 -> 3 -> 1.
std::vector<torch::nn::Sequential> face_encoder_stages() {
  return {
      sequence_of({conv(6, 16, 7, 1, 3)}),
      sequence_of({conv(16, 32, 3, 2, 1), residual(32), residual(32)}),
      sequence_of({conv(32, 64, 3, 2, 1), residual(64), residual(64), residual(64)}),
      sequence_of({conv(64, 128, 3, 2, 1), residual(128), residual(128)}),
      sequence_of({conv(128, 256, 3, 2, 1), residual(256), residual(256)}),
      sequence_of({conv(256, 512, 3, 2, 1), residual(512)}),
      sequence_of({conv(512, 512, 3, 1, 0), conv(512, 512, 1, 1, 0)}),
  };
}

// models/wav2lip.py audio_encoder: [1, 80, 16] -> [512, 1, 1].
torch::nn::Sequential audio_encoder() {
  return sequence_of({
      conv(1, 32, 3, 1, 1), residual(32), residual(32),
      conv(32, 64, 3, {3, 1}, 1), residual(64), residual(64),
      conv(64, 128, 3, 3, 1), residual(128), residual(128),
      conv(128, 256, 3, {3, 2}, 1), residual(256),
      conv(256, 512, 3, 1, 0), conv(512, 512, 1, 1, 0),
  });
}

// models/wav2lip.py face_decoder_blocks: each stage's input is the previous output concatenated
// with the matching encoder feature, hence the odd input widths.
std::vector<torch::nn::Sequential> face_decoder_stages() {
  return {
      sequence_of({conv(512, 512, 1, 1, 0)}),
      upsampling_sequence(up(1024, 512, 1, 0, 0), {residual(512)}),
      upsampling_sequence(up(1024, 512, 2, 1, 1), {residual(512), residual(512)}),
      upsampling_sequence(up(768, 384, 2, 1, 1), {residual(384), residual(384)}),
      upsampling_sequence(up(512, 256, 2, 1, 1), {residual(256), residual(256)}),
      upsampling_sequence(up(320, 128, 2, 1, 1), {residual(128), residual(128)}),
      upsampling_sequence(up(160, 64, 2, 1, 1), {residual(64), residual(64)}),
  };
}

torch::nn::ModuleList module_list_of(const std::vector<torch::nn::Sequential>& stages) {
  torch::nn::ModuleList list;
  for (const auto& stage : stages) list->push_back(stage);
  return list;
}

}  // namespace

ConvBnReluImpl::ConvBnReluImpl(const ConvShape& shape, bool residual) : residual_(residual) {
  conv_ = torch::nn::Conv2d(torch::nn::Conv2dOptions(shape.in_channels, shape.out_channels, shape.kernel)
                                .stride(shape.stride)
                                .padding(shape.padding));
  norm_ = torch::nn::BatchNorm2d(shape.out_channels);
  torch::nn::Sequential block;
  block->push_back(conv_);
  block->push_back(norm_);
  register_module("conv_block", block);
}

at::Tensor ConvBnReluImpl::forward(const at::Tensor& x) {
  at::Tensor out = norm_(conv_(x));
  if (residual_) out.add_(x);
  return out.relu_();
}

ConvTransposeBnReluImpl::ConvTransposeBnReluImpl(const ConvShape& shape) {
  conv_ = torch::nn::ConvTranspose2d(
      torch::nn::ConvTranspose2dOptions(shape.in_channels, shape.out_channels, shape.kernel)
          .stride(shape.stride)
          .padding(shape.padding)
          .output_padding(shape.output_padding));
  norm_ = torch::nn::BatchNorm2d(shape.out_channels);
  torch::nn::Sequential block;
  block->push_back(conv_);
  block->push_back(norm_);
  register_module("conv_block", block);
}

at::Tensor ConvTransposeBnReluImpl::forward(const at::Tensor& x) { return norm_(conv_(x)).relu_(); }

Wav2LipNet::Wav2LipNet()
    : encoder_stages_(face_encoder_stages()), decoder_stages_(face_decoder_stages()) {
  // Registration order = the reference's attribute order = the state dict order.
  face_encoder_blocks_ = register_module("face_encoder_blocks", module_list_of(encoder_stages_));
  audio_encoder_ = register_module("audio_encoder", audio_encoder());
  face_decoder_blocks_ = register_module("face_decoder_blocks", module_list_of(decoder_stages_));
  torch::nn::Sequential output;
  output->push_back(ConvBnRelu(conv(80, 32, 3, 1, 1).shape, false));
  output->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 3, 1)));
  // The reference's trailing nn.Sigmoid has no weights; logits() stops before it.
  output_block_ = register_module("output_block", output);
}

at::Tensor Wav2LipNet::encode_audio(const at::Tensor& mel) { return audio_encoder_->forward(mel); }

at::Tensor Wav2LipNet::logits(const at::Tensor& mel, const at::Tensor& faces, Wav2LipTrace* trace) {
  at::Tensor audio = encode_audio(mel);
  std::vector<at::Tensor> feats;
  feats.reserve(encoder_stages_.size());
  at::Tensor x = faces;
  for (auto& stage : encoder_stages_) {
    x = stage->forward(x);
    feats.push_back(x);
  }
  if (trace) {
    trace->audio_embedding = audio;
    trace->face_feats = feats;
  }
  // U-Net decoder: the deepest feature joins first.
  x = audio;
  for (std::size_t i = 0; i < decoder_stages_.size(); ++i) {
    x = at::cat({decoder_stages_[i]->forward(x), feats[feats.size() - 1 - i]}, 1);
  }
  at::Tensor out = output_block_->forward(x);
  if (trace) trace->logits = out;
  return out;
}

}  // namespace heygem::models
