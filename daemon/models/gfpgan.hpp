#pragma once
// GFPGAN v1.4 face restoration, ready to run: network (gfpgan_net.hpp) + weights + placement.
// Input: aligned 512x512 faces as GFPGANer.enhance feeds them, float [B, 3, 512, 512], RGB,
// (x/255 - 0.5)/0.5. Output: float32 [B, 3, 512, 512], RGB, unclamped (no tanh), computed with the
// registered noise buffers (the reference's randomize_noise=False), so the same input always gives
// the same output.
#include <ATen/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models {

class GfpganNet;  // the torch::nn::Module, defined in gfpgan_net.hpp

// The name of the released weights, for messages that ask the user to bring them.
inline constexpr std::string_view kGfpganWeightsFile = "GFPGANv1.4.pth";

// What one forward pass computes on its way, for parity tests.
struct GfpganTrace {
  at::Tensor enc_feat;                // [B, 256, 4, 4]: leaky_relu(final_conv(.)), input of final_linear
  at::Tensor latent;                  // [B, 16, 512]
  std::vector<at::Tensor> sft_scale;  // per U-Net level (8, 16, ..., 512)
  std::vector<at::Tensor> sft_shift;
  at::Tensor style_conv1;             // decoder style_conv1 output [B, 512, 4, 4]
  std::vector<at::Tensor> style_convs;  // outputs of the 14 decoder style_convs
  std::vector<at::Tensor> rgb_skips;  // RGB skip after to_rgb1 (4x4) and to_rgbs[0..6] (8 ... 512)
};

class GfpganRestorer {
 public:
  // Loads weights strictly by name (shape checks, all-or-nothing) and moves them once to `placement`.
  // Throws heygem::Error(invalid_input) naming the source and the key ("<source>: gfpgan: <key>:
  // expected [...], got [...]", "... missing key ...", "... unexpected key ..."; "<source>: not a
  // GFPGAN v1.4 (clean) checkpoint: ..." when most keys are missing), or Error(invalid_argument) for an
  // unusable placement.
  GfpganRestorer(const StateDict& weights, const Placement& placement, const std::string& source_name);
  ~GfpganRestorer();
  GfpganRestorer(const GfpganRestorer&) = delete;
  GfpganRestorer& operator=(const GfpganRestorer&) = delete;

  // Reads a torch checkpoint (zip or legacy pickle) and takes its "params_ema" dict (else "params",
  // else the top-level dict itself), as GFPGANer does.
  static std::unique_ptr<GfpganRestorer> from_file(const std::filesystem::path& checkpoint, const Placement& placement);
  // The clearly-labelled untrained network: hash-init weights (tests and the demo only).
  static std::unique_ptr<GfpganRestorer> untrained(const Placement& placement, const HashInitSpec& spec);

  const Placement& placement() const { return placement_; }
  const std::string& source() const { return source_; }

  // Input on any device / floating dtype; output float32 on the model's device. Thread-safe.
  // Throws heygem::Error(invalid_argument) for shapes other than [B, 3, 512, 512].
  at::Tensor restore(const at::Tensor& input) const;
  GfpganTrace trace(const at::Tensor& input, at::Tensor* output) const;

  // uint8 [B, 512, 512, 3] BGR crops (any device) -> network input on the model's device and dtype:
  // float32(u8 / 255 in double), RGB, then (x - 0.5) / 0.5 in float32, as img2tensor + normalize do.
  at::Tensor preprocess(const at::Tensor& crops_bgr_u8) const;

 private:
  Placement placement_;
  std::string source_;
  std::shared_ptr<GfpganNet> net_;
};

// BasicSR tensor2img for a float [B, 3, H, W] RGB output: clamp to [-1, 1], (x + 1) / 2, * 255,
// round half to even, uint8 [B, H, W, 3] BGR on the same device.
at::Tensor gfpgan_to_bgr_u8(const at::Tensor& output);

// The state dict GFPGANer loads from a checkpoint object: "params_ema", else "params", else the
// top-level dict; names kept exactly (no prefix stripping). `name` stands for the file in errors.
StateDict gfpgan_state_dict_from(const CheckpointObject& checkpoint, std::string_view name);

// The empty layout (names, shapes, dtypes in state_dict order): 285 entries.
StateDict gfpgan_layout();

}  // namespace heygem::models
