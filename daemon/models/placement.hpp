#pragma once
// Where a model lives and in which precision. Weights are loaded once and moved once.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <string_view>

namespace heygem::models {

struct Placement {
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = c10::kFloat;  // kFloat everywhere; kHalf / kBFloat16 on CUDA only
};

// "cpu", "cpu:N", "cuda", "cuda:1" and "float32" / "float16" / "bfloat16" (aliases fp32, fp16,
// bf16). Throws heygem::Error(invalid_argument) naming the bad text; half precision on CPU is
// refused, and so is a CUDA device that this machine does not have. "cuda" means "cuda:0"; every
// "cpu:N" is torch's one CPU device (N numbers heygemd's CPU replicas).
Placement parse_placement(std::string_view device, std::string_view precision);
// The canonical name of a replica's device: "cpu" (also for cpu:0), "cpu:N", "cuda:N". Throws
// heygem::Error(invalid_argument) for text that names no device; does not check the machine.
std::string replica_text(std::string_view device);
// "cpu float32", "cuda:0 float16".
std::string to_string(const Placement& placement);
// The two halves of to_string: "cpu" / "cuda:0" and "float32" / "float16" / "bfloat16".
std::string device_text(const c10::Device& device);
std::string precision_text(c10::ScalarType dtype);

// Throws heygem::Error(invalid_argument) unless the placement is one parse_placement can produce
// (for Placements built by hand). A CUDA float32 placement turns TF32 off for the process, so
// float32 on the GPU is IEEE float32 as on the CPU.
void check_placement(const Placement& placement);

}  // namespace heygem::models
