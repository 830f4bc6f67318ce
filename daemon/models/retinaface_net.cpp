#include "daemon/models/retinaface_net.hpp"

#include <torch/torch.h>

#include "daemon/models/state_dict.hpp"

namespace heygem::models {
namespace {

namespace nn = torch::nn;

nn::Conv2d conv_no_bias(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).groups(groups).bias(false));
}

nn::ReLU relu() { return nn::ReLU(nn::ReLUOptions().inplace(true)); }

// The reference's building blocks (models/net.py); the Sequential indices are part of the key names.
nn::Sequential conv_bn(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv_no_bias(in, out, 3, stride), nn::BatchNorm2d(out), relu());
}

nn::Sequential conv_bn_no_relu(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv_no_bias(in, out, 3, stride), nn::BatchNorm2d(out));
}

nn::Sequential conv_bn_1x1(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv_no_bias(in, out, 1, stride), nn::BatchNorm2d(out), relu());
}

// Depthwise 3x3 then pointwise 1x1, each with batch norm and ReLU.
nn::Sequential conv_dw(int64_t in, int64_t out, int64_t stride) {
  return nn::Sequential(conv_no_bias(in, in, 3, stride, /*groups=*/in), nn::BatchNorm2d(in), relu(),
                        conv_no_bias(in, out, 1, 1), nn::BatchNorm2d(out), relu());
}

at::Tensor upsample_to(const at::Tensor& x, const at::Tensor& like) {
  return nn::functional::interpolate(
      x, nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{like.size(2), like.size(3)}).mode(torch::kNearest));
}

at::Tensor run_blocks(const nn::ModuleList& blocks, at::Tensor x) {
  for (const auto& block : *blocks) x = block->as<nn::Sequential>()->forward(x);
  return x;
}

constexpr int64_t kAnchorsPerCell = 2;
constexpr int64_t kFeatureChannels = 64;

}  // namespace

RetinaFaceBody::RetinaFaceBody() {
  stage1_ = register_module("stage1", nn::ModuleList(conv_bn(3, 8, 2), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                                     conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1)));
  stage2_ = register_module("stage2", nn::ModuleList(conv_dw(64, 128, 2), conv_dw(128, 128, 1), conv_dw(128, 128, 1),
                                                     conv_dw(128, 128, 1), conv_dw(128, 128, 1), conv_dw(128, 128, 1)));
  stage3_ = register_module("stage3", nn::ModuleList(conv_dw(128, 256, 2), conv_dw(256, 256, 1)));
}

std::vector<at::Tensor> RetinaFaceBody::forward(const at::Tensor& x) {
  auto s1 = run_blocks(stage1_, x);
  auto s2 = run_blocks(stage2_, s1);
  auto s3 = run_blocks(stage3_, s2);
  return {s1, s2, s3};
}

RetinaFaceFpn::RetinaFaceFpn(const std::vector<int64_t>& in_channels, int64_t out_channels) {
  output1_ = register_module("output1", conv_bn_1x1(in_channels.at(0), out_channels, 1));
  output2_ = register_module("output2", conv_bn_1x1(in_channels.at(1), out_channels, 1));
  output3_ = register_module("output3", conv_bn_1x1(in_channels.at(2), out_channels, 1));
  merge1_ = register_module("merge1", conv_bn(out_channels, out_channels, 1));
  merge2_ = register_module("merge2", conv_bn(out_channels, out_channels, 1));
}

std::vector<at::Tensor> RetinaFaceFpn::forward(const std::vector<at::Tensor>& features) {
  auto out1 = output1_->forward(features.at(0));
  auto out2 = output2_->forward(features.at(1));
  auto out3 = output3_->forward(features.at(2));
  out2 = merge2_->forward(out2 + upsample_to(out3, out2));
  out1 = merge1_->forward(out1 + upsample_to(out2, out1));
  return {out1, out2, out3};
}

RetinaFaceSsh::RetinaFaceSsh(int64_t in_channels, int64_t out_channels) {
  conv3x3_ = register_module("conv3X3", conv_bn_no_relu(in_channels, out_channels / 2, 1));
  conv5x5_1_ = register_module("conv5X5_1", conv_bn(in_channels, out_channels / 4, 1));
  conv5x5_2_ = register_module("conv5X5_2", conv_bn_no_relu(out_channels / 4, out_channels / 4, 1));
  conv7x7_2_ = register_module("conv7X7_2", conv_bn(out_channels / 4, out_channels / 4, 1));
  conv7x7_3_ = register_module("conv7x7_3", conv_bn_no_relu(out_channels / 4, out_channels / 4, 1));
}

at::Tensor RetinaFaceSsh::forward(const at::Tensor& x) {
  const auto branch3 = conv3x3_->forward(x);
  const auto shared5 = conv5x5_1_->forward(x);
  const auto branch5 = conv5x5_2_->forward(shared5);
  const auto branch7 = conv7x7_3_->forward(conv7x7_2_->forward(shared5));
  return at::relu(at::cat({branch3, branch5, branch7}, 1));
}

RetinaFaceHead::RetinaFaceHead(int64_t in_channels, int64_t anchors, int64_t values_per_anchor)
    : values_per_anchor_(values_per_anchor) {
  conv1x1_ = register_module("conv1x1", nn::Conv2d(nn::Conv2dOptions(in_channels, anchors * values_per_anchor, 1)));
}

at::Tensor RetinaFaceHead::forward(const at::Tensor& x) {
  const auto out = conv1x1_->forward(x).permute({0, 2, 3, 1}).contiguous();
  return out.view({out.size(0), -1, values_per_anchor_});
}

RetinaFaceNet::RetinaFaceNet() {
  body_ = register_module("body", std::make_shared<RetinaFaceBody>());
  fpn_ = register_module("fpn", std::make_shared<RetinaFaceFpn>(std::vector<int64_t>{64, 128, 256}, kFeatureChannels));
  ssh1_ = register_module("ssh1", std::make_shared<RetinaFaceSsh>(kFeatureChannels, kFeatureChannels));
  ssh2_ = register_module("ssh2", std::make_shared<RetinaFaceSsh>(kFeatureChannels, kFeatureChannels));
  ssh3_ = register_module("ssh3", std::make_shared<RetinaFaceSsh>(kFeatureChannels, kFeatureChannels));
  class_heads_ = register_module("ClassHead", nn::ModuleList());
  bbox_heads_ = register_module("BboxHead", nn::ModuleList());
  landmark_heads_ = register_module("LandmarkHead", nn::ModuleList());
  for (int level = 0; level < 3; ++level) {
    class_heads_->push_back(std::make_shared<RetinaFaceHead>(kFeatureChannels, kAnchorsPerCell, 2));
    bbox_heads_->push_back(std::make_shared<RetinaFaceHead>(kFeatureChannels, kAnchorsPerCell, 4));
    landmark_heads_->push_back(std::make_shared<RetinaFaceHead>(kFeatureChannels, kAnchorsPerCell, 10));
  }
}

RetinaFaceOutputs RetinaFaceNet::forward(const at::Tensor& x) {
  const auto pyramid = fpn_->forward(body_->forward(x));
  const at::Tensor features[3] = {ssh1_->forward(pyramid[0]), ssh2_->forward(pyramid[1]), ssh3_->forward(pyramid[2])};
  std::vector<at::Tensor> loc, cls, landmarks;
  for (size_t level = 0; level < 3; ++level) {
    loc.push_back(bbox_heads_->ptr<RetinaFaceHead>(level)->forward(features[level]));
    cls.push_back(class_heads_->ptr<RetinaFaceHead>(level)->forward(features[level]));
    landmarks.push_back(landmark_heads_->ptr<RetinaFaceHead>(level)->forward(features[level]));
  }
  return {at::cat(loc, 1), at::softmax(at::cat(cls, 1).to(at::kFloat), -1), at::cat(landmarks, 1)};
}

StateDict retinaface_layout() {
  RetinaFaceNet net;
  return module_state_dict(net);
}

}  // namespace heygem::models
