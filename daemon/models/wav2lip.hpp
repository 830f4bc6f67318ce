#pragma once
// The Wav2Lip generator, ready to run: network (wav2lip_net.hpp) + weights + placement.
// Inputs follow the reference: mel chunks float [B, 1, 80, 16], faces float [B, 6, 96, 96] in [0, 1]
// (channels: masked BGR, then unmasked BGR). Output: float32 [B, 3, 96, 96] sigmoid values, BGR.
#include <ATen/Tensor.h>

#include <filesystem>
#include <memory>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models {

class Wav2LipNet;  // torch::nn module holder, defined in wav2lip_net.hpp

class Wav2LipGenerator {
 public:
  // Loads weights strictly by name (shape checks, all-or-nothing) and moves them once to `placement`.
  // Throws heygem::Error(invalid_input) naming the source and the cause.
  Wav2LipGenerator(const StateDict& weights, const Placement& placement, const std::string& source_name);
  ~Wav2LipGenerator();
  Wav2LipGenerator(const Wav2LipGenerator&) = delete;
  Wav2LipGenerator& operator=(const Wav2LipGenerator&) = delete;

  static std::unique_ptr<Wav2LipGenerator> from_file(const std::filesystem::path& checkpoint, const Placement& placement);
  // The clearly-labelled untrained generator: hash-init weights (the demo uses seed 1 with the
  // wav2lip fixture's gain, output_block.1.weight x 2^-9, so its output is not saturated).
  static std::unique_ptr<Wav2LipGenerator> untrained(const Placement& placement, const HashInitSpec& spec);

  const Placement& placement() const { return placement_; }
  // Inputs on any device / dtype; they are moved to the model's. Output float32 on the model's device.
  at::Tensor generate(const at::Tensor& mel, const at::Tensor& faces) const;
  // Reference intermediates for parity tests: the audio encoder output [B, 512, 1, 1] and the
  // logits before the final sigmoid.
  at::Tensor audio_embedding(const at::Tensor& mel) const;
  at::Tensor logits(const at::Tensor& mel, const at::Tensor& faces) const;

 private:
  Placement placement_;
  std::shared_ptr<Wav2LipNet> net_;
};

// The empty layout (names, shapes, dtypes in state_dict order) of the generator: 352 entries.
StateDict wav2lip_layout();

}  // namespace heygem::models
