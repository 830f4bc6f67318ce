// Placement parsing: devices, precisions, aliases and the refusals.
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <string>

#include "common/errors.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models {
namespace {

std::string refusal(std::string_view device, std::string_view precision) {
  try {
    parse_placement(device, precision);
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << error.what();
    return error.what();
  }
  ADD_FAILURE() << "accepted " << device << " / " << precision;
  return {};
}

TEST(Placement, CpuFloat32AndAliases) {
  for (const char* text : {"float32", "fp32", "FP32", "Float32"}) {
    const Placement placement = parse_placement("cpu", text);
    EXPECT_TRUE(placement.device.is_cpu()) << text;
    EXPECT_EQ(placement.dtype, c10::kFloat) << text;
    EXPECT_EQ(to_string(placement), "cpu float32");
  }
  EXPECT_TRUE(parse_placement("CPU", "float32").device.is_cpu());
}

TEST(Placement, HalfPrecisionOnCpuIsRefused) {
  for (const char* text : {"float16", "fp16", "bfloat16", "bf16"}) {
    const std::string message = refusal("cpu", text);
    EXPECT_NE(message.find("CUDA"), std::string::npos) << message;
  }
}

TEST(Placement, BadTextIsNamed) {
  EXPECT_NE(refusal("gpu", "float32").find("\"gpu\""), std::string::npos);
  EXPECT_NE(refusal("cuda:x", "float32").find("\"cuda:x\""), std::string::npos);
  EXPECT_NE(refusal("cuda:", "float32").find("\"cuda:\""), std::string::npos);
  EXPECT_NE(refusal("cuda:-1", "float32").find("\"cuda:-1\""), std::string::npos);
  EXPECT_NE(refusal("cuda:1x", "float32").find("\"cuda:1x\""), std::string::npos);
  EXPECT_NE(refusal("cudax", "float32").find("\"cudax\""), std::string::npos);
  EXPECT_NE(refusal("cpu", "float64").find("\"float64\""), std::string::npos);
  EXPECT_NE(refusal("cpu", "").find("\"\""), std::string::npos);
}

TEST(Placement, CudaNeedsADevice) {
  const std::size_t count = torch::cuda::device_count();
  if (count == 0) {
    // A CPU-only libtorch says what the operator must change: the build, not the driver.
    const std::string message = refusal("cuda", "float16");
    EXPECT_NE(message.find(at::hasCUDA() ? "no CUDA device is visible" : "is a CPU-only build"), std::string::npos)
        << message;
    EXPECT_NE(message.find("cuda:0"), std::string::npos) << message;
    return;
  }
  const Placement first = parse_placement("cuda", "fp16");
  EXPECT_TRUE(first.device.is_cuda());
  EXPECT_EQ(first.device.index(), 0);
  EXPECT_EQ(to_string(first), "cuda:0 float16");
  EXPECT_EQ(to_string(parse_placement("cuda:0", "bf16")), "cuda:0 bfloat16");
  const std::string beyond = "cuda:" + std::to_string(count);
  EXPECT_NE(refusal(beyond, "float32").find(beyond), std::string::npos);
}

TEST(Placement, HandBuiltPlacementsAreChecked) {
  EXPECT_NO_THROW(check_placement(Placement{}));
  EXPECT_THROW(check_placement(Placement{c10::Device(c10::kCPU), c10::kHalf}), Error);
  EXPECT_THROW(check_placement(Placement{c10::Device(c10::kCPU), c10::kDouble}), Error);
  EXPECT_EQ(device_text(c10::Device(c10::kCUDA)), "cuda:0");
  EXPECT_EQ(precision_text(c10::kBFloat16), "bfloat16");
}

}  // namespace
}  // namespace heygem::models
