// libFuzzer glue: HEYGEM_FUZZ_FUNCTION (set by tests/fuzz/CMakeLists.txt) names the target.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  HEYGEM_FUZZ_FUNCTION(heygem::fuzz::Bytes(data, size));
  return 0;
}
