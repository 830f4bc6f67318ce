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

// "cpu", "cuda", "cuda:1" and "float32" / "float16" / "bfloat16" (aliases fp32, fp16, bf16).
// Throws heygem::Error(invalid_argument) naming the bad text; half precision on CPU is refused.
Placement parse_placement(std::string_view device, std::string_view precision);
std::string to_string(const Placement& placement);

}  // namespace heygem::models
