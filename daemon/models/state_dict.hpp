#pragma once
// Moving named tensors between checkpoints and torch::nn modules, strictly and by name.
#include <torch/nn/module.h>

#include <string_view>

#include "daemon/models/checkpoint.hpp"

namespace heygem::models {

// The module's parameters and buffers in the order Python's Module.state_dict() lists them:
// for each module (pre-order), its own parameters, then its own buffers, then its children.
StateDict module_state_dict(const torch::nn::Module& module);

// Copies every entry of `weights` into `module`. All-or-nothing: every key must exist on both sides
// with the same shape, or heygem::Error(invalid_input) names the model, the key and both shapes
// ("wav2lip: face_decoder_blocks.3.0.conv_block.0.weight: expected [768,384,3,3], got [512,256,3,3]")
// and the module is left untouched.
void load_into(torch::nn::Module& module, const StateDict& weights, std::string_view model_name);

}  // namespace heygem::models
