#pragma once
// What this heygemd was built with and what it finds on the machine: `heygemd --build-info`, printed
// by scripts/setup.sh after a build, so an operator sees at once whether the GPU build took.
#include <string>

namespace heygem::app {

// Multi-line, human-readable: version, libtorch (and its CUDA), the GPUs torch sees, FFmpeg's
// libraries and hardware decoders, and whether a CUDA hardware device opens.
std::string build_info();

}  // namespace heygem::app
