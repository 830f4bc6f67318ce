#pragma once
// The Wav2Lip generator, ready to run: network (wav2lip_net.hpp) + weights + placement.
// Inputs follow the reference: mel chunks float [B, 1, 80, 16], faces float [B, 6, 96, 96] in [0, 1]
// (channels: masked BGR, then unmasked BGR). Output: float32 [B, 3, 96, 96] sigmoid values, BGR.
#include <ATen/Tensor.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models {

class Wav2LipNet;  // the torch::nn::Module, defined in wav2lip_net.hpp

// What one forward pass computes on its way, for parity tests.
struct Wav2LipTrace {
  at::Tensor audio_embedding;          // [B, 512, 1, 1]
  std::vector<at::Tensor> face_feats;  // outputs of the 7 face-encoder blocks, finest (96x96) first
  at::Tensor logits;                   // [B, 3, 96, 96], input of the final sigmoid
};

class Wav2LipGenerator {
 public:
  // Loads weights strictly by name (shape checks, all-or-nothing) and moves them once to `placement`.
  // Throws heygem::Error(invalid_input) naming the source and the cause ("<source>: wav2lip: <key>:
  // expected [...], got [...]"; "<source>: not a Wav2Lip generator checkpoint: ..." when most keys are
  // missing), or heygem::Error(invalid_argument) for an unusable placement.
  Wav2LipGenerator(const StateDict& weights, const Placement& placement, const std::string& source_name);
  ~Wav2LipGenerator();
  Wav2LipGenerator(const Wav2LipGenerator&) = delete;
  Wav2LipGenerator& operator=(const Wav2LipGenerator&) = delete;

  static std::unique_ptr<Wav2LipGenerator> from_file(const std::filesystem::path& checkpoint, const Placement& placement);
  // The clearly-labelled untrained generator: hash-init weights (the demo uses seed 1 with the
  // wav2lip fixture's gain, output_block.1.weight x 2^-9, so its output is not saturated).
  static std::unique_ptr<Wav2LipGenerator> untrained(const Placement& placement, const HashInitSpec& spec);

  const Placement& placement() const { return placement_; }
  // Where the weights came from: the checkpoint path, or "untrained wav2lip (hash-init seed N)".
  const std::string& source() const { return source_; }
  // Inputs on any device / floating dtype and in any memory format; they are moved to the model's
  // device and precision and given the reference's NHWC strides (on CPU float32 that reproduces the
  // reference's numbers bit for bit).
  // Output float32 on the model's device. Thread-safe (read-only forward under c10::InferenceMode).
  // Throws heygem::Error(invalid_argument) for shapes other than the ones above.
  at::Tensor generate(const at::Tensor& mel, const at::Tensor& faces) const;
  // Reference intermediates for parity tests: the audio encoder output [B, 512, 1, 1] and the
  // logits before the final sigmoid.
  at::Tensor audio_embedding(const at::Tensor& mel) const;
  at::Tensor logits(const at::Tensor& mel, const at::Tensor& faces) const;
  // Every intermediate the parity fixtures record (float32, on the model's device).
  Wav2LipTrace trace(const at::Tensor& mel, const at::Tensor& faces) const;

 private:
  Placement placement_;
  std::string source_;
  std::shared_ptr<Wav2LipNet> net_;
};

// The empty layout (names, shapes, dtypes in state_dict order) of the generator: 352 entries.
StateDict wav2lip_layout();

}  // namespace heygem::models
