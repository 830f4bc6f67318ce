#pragma once
// Reads PyTorch checkpoints without Python: the legacy pickle format (torch < 1.6), the zip format
// (torch >= 1.6) and safetensors. Only the pickle subset that state dicts use is accepted.
#include <ATen/Tensor.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace heygem::models {

// A state dict in file order: name -> tensor (CPU). Order matters for hash-init and diagnostics.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

// Loads the state dict of a checkpoint file. Unwraps {"state_dict": ...} layouts and strips a
// "module." prefix. Throws heygem::Error(invalid_input) naming the file and the exact cause.
StateDict load_state_dict(const std::filesystem::path& file);

}  // namespace heygem::models
