#pragma once
// One loaded instance of a configured model, on its device: the torch half of the residency code.
// Loading is split in two so the owner thread can check the memory budget in between: read the
// weights into host memory (HostWeights, which knows what placing them will cost), then place them.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/placement.hpp"
#include "daemon/residency/model_registry.hpp"

namespace heygem::models {
class S3fdDetector;
class RetinaFaceDetector;
class GfpganRestorer;
}  // namespace heygem::models

namespace heygem::residency {

// The weights of one spec in host memory, not yet on the device.
struct HostWeights {
  models::Placement placement;
  models::StateDict weights;       // empty for the untrained generator (hash-init happens on placing)
  std::uint64_t device_bytes = 0;  // parameters + buffers once placed, in the placement's precision
  bool untrained = false;
};

// Parses the placement on `device` (one replica's) and reads the weights file. Throws heygem::Error
// naming the model and cause.
HostWeights read_host_weights(const ModelSpec& spec, const std::string& device);

// The seed and gain of the clearly-labelled untrained generator (shared/fixtures/README.md).
models::HashInitSpec untrained_generator_spec();

class ResidentModel {
 public:
  // Builds the network on the device from `weights` (consumed). Throws heygem::Error naming the model.
  ResidentModel(const ModelSpec& spec, HostWeights weights);
  ~ResidentModel();
  ResidentModel(const ResidentModel&) = delete;
  ResidentModel& operator=(const ResidentModel&) = delete;

  const ModelSpec& spec() const { return spec_; }
  const models::Placement& placement() const { return placement_; }
  const models::Wav2LipGenerator* generator() const { return generator_.get(); }
  const models::FaceDetector* detector() const;
  const models::GfpganRestorer* restorer() const { return restorer_.get(); }
  bool untrained() const { return untrained_; }
  const std::string& source() const { return source_; }
  std::uint64_t parameter_bytes() const { return parameter_bytes_; }

  // `passes` forward passes at the pipeline's shapes (cuDNN autotuning and allocator growth happen
  // here, not in the first job). Throws heygem::Error(internal) when an output is NaN or inf.
  void warm_up(const WarmupShapes& shapes) const;
  // One small real inference (the heartbeat). Throws heygem::Error when it fails or an output is
  // NaN or inf.
  void probe() const { probe_as("heartbeat"); }

 private:
  void probe_as(const char* what) const;
  void check_finite(const at::Tensor& output, const char* what) const;

  ModelSpec spec_;
  models::Placement placement_;
  bool untrained_ = false;
  std::string source_;
  std::uint64_t parameter_bytes_ = 0;
  std::unique_ptr<models::Wav2LipGenerator> generator_;
  std::unique_ptr<models::S3fdDetector> s3fd_;
  std::unique_ptr<models::RetinaFaceDetector> retinaface_;
  std::unique_ptr<models::GfpganRestorer> restorer_;
};

// "wav2lip", "s3fd", "retinaface", "gfpgan".
std::string to_string(ModelKind kind);
bool is_detector(ModelKind kind);
ModelRole role_of(ModelKind kind);
// "generator", "detector", "restorer".
std::string to_string(ModelRole role);
// Why --enhance is refused on a daemon without a gfpgan model: names the weights file to bring.
std::string_view restorer_missing_message();

}  // namespace heygem::residency
