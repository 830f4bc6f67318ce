#include "daemon/app/build_info.hpp"

#include <ATen/Context.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <sstream>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/hwcontext.h>
#include <libavutil/log.h>
#include <libavutil/version.h>
}

#include "common/version.hpp"

namespace heygem::app {
namespace {

std::string library_version(unsigned version) {
  return std::to_string(AV_VERSION_MAJOR(version)) + "." + std::to_string(AV_VERSION_MINOR(version)) + "." +
         std::to_string(AV_VERSION_MICRO(version));
}

// The CUDA runtime line of libtorch's own configuration summary ("CUDA Runtime 12.4"), if any.
std::string torch_cuda_runtime() {
  std::istringstream config(at::show_config());
  for (std::string line; std::getline(config, line);) {
    const auto at = line.find("CUDA Runtime");
    if (at != std::string::npos) return line.substr(at + 13);
  }
  return {};
}

std::string hardware_decoders() {
  std::string names;
  for (AVHWDeviceType type = av_hwdevice_iterate_types(AV_HWDEVICE_TYPE_NONE); type != AV_HWDEVICE_TYPE_NONE;
       type = av_hwdevice_iterate_types(type))
    names += (names.empty() ? "" : " ") + std::string(av_hwdevice_get_type_name(type));
  return names.empty() ? "none" : names;
}

// Opening the device proves the driver and FFmpeg's CUDA loader work, not only that it was compiled in.
// FFmpeg's own log of a failed open is quiet here: the returned reason says it in one line.
std::string cuda_hardware_device() {
  const int log_level = av_log_get_level();
  av_log_set_level(AV_LOG_QUIET);
  AVBufferRef* device = nullptr;
  const int result = av_hwdevice_ctx_create(&device, AV_HWDEVICE_TYPE_CUDA, nullptr, nullptr, 0);
  av_log_set_level(log_level);
  if (result < 0) {
    char reason[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(result, reason, sizeof(reason));
    return std::string("does not open (") + reason + "; no NVIDIA driver?)";
  }
  av_buffer_unref(&device);
  return "opens";
}

}  // namespace

std::string build_info() {
  std::ostringstream out;
  out << "heygemd " << heygem_version() << "\n";
  const std::string cuda_runtime = torch_cuda_runtime();
  const bool cuda_build = at::hasCUDA() || !cuda_runtime.empty();
  out << "libtorch " << TORCH_VERSION << (cuda_build ? ", CUDA runtime " + cuda_runtime : ", CPU-only build")
      << "\n";
  const auto gpus = torch::cuda::device_count();
  if (cuda_build)
    out << "GPUs torch sees: " << gpus
        << (gpus == 0 ? " (driver missing, or CUDA_VISIBLE_DEVICES hides them)" : "") << "\n";
  out << "device: auto runs on " << (gpus > 0 ? "cuda" : "cpu") << "\n";
  out << "FFmpeg libavcodec " << library_version(avcodec_version()) << ", libavformat "
      << library_version(avformat_version()) << ", libavutil " << library_version(avutil_version()) << " ("
      << av_version_info() << ")\n";
  out << "FFmpeg hardware device types: " << hardware_decoders() << "\n";
  out << "FFmpeg CUDA device (NVDEC): " << cuda_hardware_device() << "\n";
  return out.str();
}

}  // namespace heygem::app
