#include "daemon/models/s3fd_net.hpp"

#include <torch/torch.h>

#include "daemon/models/state_dict.hpp"

namespace heygem::models {
namespace {

at::Tensor conv_relu(torch::nn::Conv2d& conv, const at::Tensor& x) { return at::relu(conv->forward(x)); }

at::Tensor pool(const at::Tensor& x) { return at::max_pool2d(x, {2, 2}, {2, 2}); }

}  // namespace

S3fdL2Norm::S3fdL2Norm(int64_t channels) { weight_ = register_parameter("weight", at::ones({channels})); }

at::Tensor S3fdL2Norm::forward(const at::Tensor& x) const {
  // float32 even for half-precision models: the sum of squares overflows float16.
  const auto values = x.to(at::kFloat);
  const auto norm = values.pow(2).sum(1, /*keepdim=*/true).sqrt() + 1e-10;
  return (values / norm * weight_.to(at::kFloat).view({1, -1, 1, 1})).to(x.scalar_type());
}

torch::nn::Conv2d S3fdNet::conv(const std::string& name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                int64_t padding) {
  return register_module(name, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding)));
}

S3fdNet::S3fdNet() {
  // Registration order = the reference's state_dict order.
  conv1_1_ = conv("conv1_1", 3, 64, 3, 1, 1);
  conv1_2_ = conv("conv1_2", 64, 64, 3, 1, 1);
  conv2_1_ = conv("conv2_1", 64, 128, 3, 1, 1);
  conv2_2_ = conv("conv2_2", 128, 128, 3, 1, 1);
  conv3_1_ = conv("conv3_1", 128, 256, 3, 1, 1);
  conv3_2_ = conv("conv3_2", 256, 256, 3, 1, 1);
  conv3_3_ = conv("conv3_3", 256, 256, 3, 1, 1);
  conv4_1_ = conv("conv4_1", 256, 512, 3, 1, 1);
  conv4_2_ = conv("conv4_2", 512, 512, 3, 1, 1);
  conv4_3_ = conv("conv4_3", 512, 512, 3, 1, 1);
  conv5_1_ = conv("conv5_1", 512, 512, 3, 1, 1);
  conv5_2_ = conv("conv5_2", 512, 512, 3, 1, 1);
  conv5_3_ = conv("conv5_3", 512, 512, 3, 1, 1);
  fc6_ = conv("fc6", 512, 1024, 3, 1, 3);
  fc7_ = conv("fc7", 1024, 1024, 1, 1, 0);
  conv6_1_ = conv("conv6_1", 1024, 256, 1, 1, 0);
  conv6_2_ = conv("conv6_2", 256, 512, 3, 2, 1);
  conv7_1_ = conv("conv7_1", 512, 128, 1, 1, 0);
  conv7_2_ = conv("conv7_2", 128, 256, 3, 2, 1);
  conv3_3_norm_ = register_module("conv3_3_norm", std::make_shared<S3fdL2Norm>(256));
  conv4_3_norm_ = register_module("conv4_3_norm", std::make_shared<S3fdL2Norm>(512));
  conv5_3_norm_ = register_module("conv5_3_norm", std::make_shared<S3fdL2Norm>(512));

  struct Head {
    const char* source;
    int64_t channels;
    int64_t classes;
  };
  const Head heads[kLevels] = {{"conv3_3_norm", 256, 4}, {"conv4_3_norm", 512, 2}, {"conv5_3_norm", 512, 2},
                               {"fc7", 1024, 2},         {"conv6_2", 512, 2},      {"conv7_2", 256, 2}};
  for (const auto& head : heads) {
    conf_heads_.push_back(conv(std::string(head.source) + "_mbox_conf", head.channels, head.classes, 3, 1, 1));
    loc_heads_.push_back(conv(std::string(head.source) + "_mbox_loc", head.channels, 4, 3, 1, 1));
  }
}

S3fdOutputs S3fdNet::forward(const at::Tensor& x) {
  auto h = pool(conv_relu(conv1_2_, conv_relu(conv1_1_, x)));
  h = pool(conv_relu(conv2_2_, conv_relu(conv2_1_, h)));
  const auto f3_3 = conv_relu(conv3_3_, conv_relu(conv3_2_, conv_relu(conv3_1_, h)));
  const auto f4_3 = conv_relu(conv4_3_, conv_relu(conv4_2_, conv_relu(conv4_1_, pool(f3_3))));
  const auto f5_3 = conv_relu(conv5_3_, conv_relu(conv5_2_, conv_relu(conv5_1_, pool(f4_3))));
  const auto ffc7 = conv_relu(fc7_, conv_relu(fc6_, pool(f5_3)));
  const auto f6_2 = conv_relu(conv6_2_, conv_relu(conv6_1_, ffc7));
  const auto f7_2 = conv_relu(conv7_2_, conv_relu(conv7_1_, f6_2));

  const at::Tensor features[kLevels] = {conv3_3_norm_->forward(f3_3), conv4_3_norm_->forward(f4_3),
                                        conv5_3_norm_->forward(f5_3), ffc7, f6_2, f7_2};
  S3fdOutputs out;
  for (int level = 0; level < kLevels; ++level) {
    out.cls_logits.push_back(conf_heads_[level]->forward(features[level]));
    out.reg.push_back(loc_heads_[level]->forward(features[level]));
  }
  // "max-out background label": level 1's first three logits reduce to one background logit.
  const auto chunks = out.cls_logits[0].chunk(4, 1);
  out.cls_logits[0] = at::cat({at::max(at::max(chunks[0], chunks[1]), chunks[2]), chunks[3]}, 1);
  return out;
}

StateDict s3fd_layout() {
  S3fdNet net;
  return module_state_dict(net);
}

}  // namespace heygem::models
