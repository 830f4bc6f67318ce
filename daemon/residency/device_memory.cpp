#include "daemon/residency/device_memory.hpp"

#if defined(HEYGEM_HAVE_TORCH_CUDA) && __has_include(<c10/cuda/CUDACachingAllocator.h>) && \
    __has_include(<cuda_runtime_api.h>)
#define HEYGEM_RESIDENCY_CUDA 1
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <ATen/ATen.h>
#endif

namespace heygem::residency {

#ifdef HEYGEM_RESIDENCY_CUDA
std::optional<DeviceMemory> cuda_memory(const c10::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  const auto index = device.has_index() ? device.index() : c10::DeviceIndex(0);
  // The allocator knows the device only after CUDA's lazy initialisation: an empty tensor triggers it
  // the same way in every libtorch version.
  at::empty({0}, at::TensorOptions().device(c10::Device(c10::kCUDA, index)));
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  constexpr std::size_t aggregate = 0;  // StatType::AGGREGATE in every libtorch version
  return DeviceMemory{static_cast<std::uint64_t>(stats.allocated_bytes[aggregate].current),
                      static_cast<std::uint64_t>(stats.reserved_bytes[aggregate].current)};
}

void synchronize(const c10::Device& device) {
  if (!device.is_cuda()) return;
  const c10::cuda::CUDAGuard guard(device.has_index() ? device.index() : c10::DeviceIndex(0));
  c10::cuda::device_synchronize();
}

void release_cached_memory(const c10::Device& device) {
  if (!device.is_cuda()) return;
  synchronize(device);
  c10::cuda::CUDACachingAllocator::emptyCache();
}
#else
std::optional<DeviceMemory> cuda_memory(const c10::Device&) { return std::nullopt; }
void synchronize(const c10::Device&) {}
void release_cached_memory(const c10::Device&) {}
#endif

}  // namespace heygem::residency
