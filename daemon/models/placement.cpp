#include "daemon/models/placement.hpp"

#include <ATen/Context.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "common/errors.hpp"

namespace heygem::models {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

[[noreturn]] void refuse(const std::string& what) { throw Error(ErrorCode::invalid_argument, what); }

// "N" of "cuda:N" / "cpu:N": digits only, no sign, no trailing text.
int device_index(std::string_view digits, std::string_view original) {
  int index = -1;
  const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size() || index < 0 || index > 127)
    refuse("device \"" + std::string(original) + "\": expected cpu, cpu:N, cuda or cuda:N with N a device number");
  return index;
}

struct ParsedDevice {
  c10::Device device;
  int replica = 0;  // N of cpu:N (torch has one CPU device; replicas are ours)
};

ParsedDevice parse_device_text(std::string_view text) {
  const std::string name = lower(text);
  for (const std::string_view type : {std::string_view("cpu"), std::string_view("cuda")}) {
    if (name.rfind(type, 0) != 0) continue;
    int index = 0;
    if (name.size() > type.size()) {
      if (name[type.size()] != ':') break;
      index = device_index(std::string_view(name).substr(type.size() + 1), text);
    }
    if (type == "cpu") return {c10::Device(c10::kCPU), index};
    return {c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index)), 0};
  }
  refuse("device \"" + std::string(text) + "\": expected cpu, cpu:N, cuda or cuda:N");
}

c10::Device parse_device(std::string_view text) { return parse_device_text(text).device; }

c10::ScalarType parse_precision(std::string_view text) {
  const std::string name = lower(text);
  if (name == "float32" || name == "fp32") return c10::kFloat;
  if (name == "float16" || name == "fp16") return c10::kHalf;
  if (name == "bfloat16" || name == "bf16") return c10::kBFloat16;
  refuse("precision \"" + std::string(text) + "\": expected float32, float16 or bfloat16 (fp32, fp16, bf16)");
}

}  // namespace

void check_placement(const Placement& placement) {
  const c10::Device& device = placement.device;
  if (!device.is_cpu() && !device.is_cuda())
    refuse("device " + device.str() + ": only cpu and cuda are supported");
  const c10::ScalarType dtype = placement.dtype;
  if (dtype != c10::kFloat && dtype != c10::kHalf && dtype != c10::kBFloat16)
    refuse(std::string("precision ") + c10::toString(dtype) + ": expected float32, float16 or bfloat16");
  if (device.is_cpu() && dtype != c10::kFloat)
    refuse("precision " + precision_text(dtype) + " needs a CUDA device; on cpu only float32 is supported");
  if (device.is_cuda()) {
    const std::size_t count = torch::cuda::device_count();
    if (count == 0 && !at::hasCUDA())
      refuse("device " + device_text(device) + " requested, but this heygemd is a CPU-only build (its libtorch has "
             "no CUDA): build the GPU one with scripts/setup.sh --gpu (docs/gpu.md), or use device: cpu or auto");
    if (count == 0)
      refuse("device " + device_text(device) + " requested, but no CUDA device is visible (driver, "
             "CUDA_VISIBLE_DEVICES?)");
    const auto index = static_cast<std::size_t>(device.has_index() ? device.index() : 0);
    if (index >= count)
      refuse("device " + device_text(device) + " requested, but this machine has " + std::to_string(count) +
             " CUDA device(s)");
    // float32 on CUDA means IEEE float32: cuDNN and cuBLAS would otherwise round convolution and
    // matmul inputs to TF32 (10-bit mantissa), about 1e-3 off the reference. The switch is
    // process-wide and only concerns float32 math; float16/bfloat16 models are the fast choice.
    if (dtype == c10::kFloat) {
      at::globalContext().setAllowTF32CuDNN(false);
      at::globalContext().setAllowTF32CuBLAS(false);
    }
  }
}

Placement parse_placement(std::string_view device, std::string_view precision) {
  Placement placement{parse_device(device), parse_precision(precision)};
  check_placement(placement);
  return placement;
}

std::string replica_text(std::string_view device) {
  const auto parsed = parse_device_text(device);
  if (parsed.device.is_cpu()) return parsed.replica == 0 ? "cpu" : "cpu:" + std::to_string(parsed.replica);
  return device_text(parsed.device);
}

std::string device_text(const c10::Device& device) {
  if (device.is_cuda()) return "cuda:" + std::to_string(device.has_index() ? device.index() : 0);
  return device.str();
}

std::string precision_text(c10::ScalarType dtype) {
  switch (dtype) {
    case c10::kFloat: return "float32";
    case c10::kHalf: return "float16";
    case c10::kBFloat16: return "bfloat16";
    default: return c10::toString(dtype);
  }
}

std::string to_string(const Placement& placement) {
  return device_text(placement.device) + " " + precision_text(placement.dtype);
}

}  // namespace heygem::models
