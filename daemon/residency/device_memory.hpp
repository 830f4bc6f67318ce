#pragma once
// Device memory as the residency code needs it: what the CUDA caching allocator holds, and giving
// its cached blocks back to the driver on unload (otherwise an unloaded model's memory stays
// reserved by the process). CPU-only builds (Debian's libtorch 1.13) compile the CUDA parts out.
#include <c10/core/Device.h>

#include <cstdint>
#include <optional>

namespace heygem::residency {

struct DeviceMemory {
  std::uint64_t allocated = 0;  // bytes in live tensors
  std::uint64_t reserved = 0;   // bytes the caching allocator holds from the driver
};

// Allocator statistics of a CUDA device; nullopt for the CPU or when this build has no CUDA.
std::optional<DeviceMemory> cuda_memory(const c10::Device& device);

// Waits for the device's queued work (CUDA); nothing to do on the CPU.
void synchronize(const c10::Device& device);

// Returns the caching allocator's unused blocks to the driver (CUDA); nothing to do on the CPU.
void release_cached_memory(const c10::Device& device);

}  // namespace heygem::residency
