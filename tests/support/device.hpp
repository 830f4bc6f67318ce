#pragma once
// Where the parity tests run: HEYGEM_TEST_DEVICE (cpu | cuda | cuda:N, default cpu) and
// HEYGEM_TEST_PRECISION (float32 | float16 | bfloat16, default float32). The same tests prove the
// CPU build in CI and the CUDA build on the GPU machine (scripts/gpu-bench.sh).
#include <ATen/Context.h>

#include <cstdlib>
#include <string>

#include "daemon/models/placement.hpp"

namespace heygem::test {

inline std::string env_or(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

inline models::Placement test_placement() {
  // cuDNN's TF32 convolutions are far coarser than the fixtures' float32 tolerances
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  return models::parse_placement(env_or("HEYGEM_TEST_DEVICE", "cpu"), env_or("HEYGEM_TEST_PRECISION", "float32"));
}

inline bool half_precision(const models::Placement& placement) { return placement.dtype != c10::kFloat; }

}  // namespace heygem::test
