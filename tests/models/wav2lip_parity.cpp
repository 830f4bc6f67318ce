// Wav2Lip generator vs the reference forward pass (shared/fixtures/wav2lip, hash-init weights).
// Tolerances: shared/fixtures/README.md, "Recommended tolerances".
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>

#include "daemon/models/wav2lip.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"

namespace heygem::models {
namespace {

constexpr double kOutputMaxAbs = 1e-4;        // output.f32
constexpr double kRelativeToMaxAbs = 2e-5;    // output_logits, audio_embedding, face_feat*

const std::string kFolder = "wav2lip";

at::Tensor tensor_of(const test::RawTensor& raw) {
  std::vector<float> copy = raw.f32;
  return at::from_blob(copy.data(), raw.shape, at::kFloat).clone();
}

at::Tensor fixture(const std::string& file) { return tensor_of(test::load_raw(kFolder, file)); }

HashInitSpec fixture_spec() { return test::hash_init_spec(kFolder); }

// max |actual - expected|, both moved to CPU float32.
double max_abs_diff(const at::Tensor& actual, const at::Tensor& expected) {
  EXPECT_EQ(actual.sizes(), expected.sizes());
  return (actual.to(at::kCPU, at::kFloat) - expected).abs().max().item<double>();
}

double max_abs(const at::Tensor& tensor) { return tensor.abs().max().item<double>(); }

struct Inputs {
  at::Tensor mel, faces;
};

// The reference holds both batches NHWC-strided; the generator restrides whatever it gets, so the
// stored NCHW files and a ChannelsLast copy must both match.
Inputs fixture_inputs(bool channels_last) {
  Inputs inputs{fixture("mel_input.f32"), fixture("face_input.f32")};
  if (channels_last) inputs.faces = inputs.faces.contiguous(at::MemoryFormat::ChannelsLast);
  return inputs;
}

struct Report {
  double output = 0, logits = 0, audio = 0, feats = 0;  // output absolute; the rest relative to max |ref|
};

Report compare_with_reference(const Wav2LipGenerator& generator, const Inputs& inputs) {
  const int64_t batch = test::manifest(kFolder).at("meta").at("batch").get<int64_t>();
  EXPECT_EQ(inputs.mel.size(0), batch);
  EXPECT_EQ(inputs.faces.size(0), batch);
  Report report;
  const at::Tensor output = generator.generate(inputs.mel, inputs.faces);
  EXPECT_EQ(output.scalar_type(), at::kFloat);
  report.output = max_abs_diff(output, fixture("output.f32"));

  const Wav2LipTrace trace = generator.trace(inputs.mel, inputs.faces);
  const at::Tensor logits = fixture("output_logits.f32");
  report.logits = max_abs_diff(trace.logits, logits) / max_abs(logits);
  const at::Tensor audio = fixture("audio_embedding.f32");
  report.audio = max_abs_diff(trace.audio_embedding, audio) / max_abs(audio);
  // The standalone audio encoder gives the same embedding as the full pass.
  EXPECT_LE(max_abs_diff(generator.audio_embedding(inputs.mel), audio) / max_abs(audio), kRelativeToMaxAbs);

  EXPECT_EQ(trace.face_feats.size(), 7u);
  for (std::size_t i = 0; i < trace.face_feats.size(); ++i) {
    const at::Tensor expected = fixture("face_feat" + std::to_string(i) + "_s0.f32");
    const double relative = max_abs_diff(trace.face_feats[i][0].unsqueeze(0).reshape(expected.sizes()), expected) /
                            max_abs(expected);
    EXPECT_LE(relative, kRelativeToMaxAbs) << "face_feat" << i;
    report.feats = std::max(report.feats, relative);
  }
  return report;
}

void expect_within_tolerance(const Report& report, const std::string& label) {
  std::cout << "[wav2lip " << label << "] max abs output diff " << report.output << "; relative to max |ref|: logits "
            << report.logits << ", audio embedding " << report.audio << ", face feats " << report.feats << "\n";
  EXPECT_LE(report.output, kOutputMaxAbs);
  EXPECT_LE(report.logits, kRelativeToMaxAbs);
  EXPECT_LE(report.audio, kRelativeToMaxAbs);
}

const Wav2LipGenerator& cpu_generator() {
  static const auto generator = Wav2LipGenerator::untrained(Placement{}, fixture_spec());
  return *generator;
}

TEST(Wav2LipParity, CpuFloat32ChannelsLastInput) {
  expect_within_tolerance(compare_with_reference(cpu_generator(), fixture_inputs(true)), "cpu float32 channels-last");
}

TEST(Wav2LipParity, CpuFloat32ContiguousInput) {
  expect_within_tolerance(compare_with_reference(cpu_generator(), fixture_inputs(false)), "cpu float32 contiguous");
}

TEST(Wav2LipParity, CudaFloat32AndHalfPrecisionError) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const Inputs inputs = fixture_inputs(true);
  const auto fp32 = Wav2LipGenerator::untrained(parse_placement("cuda", "float32"), fixture_spec());
  expect_within_tolerance(compare_with_reference(*fp32, inputs), "cuda float32");
  for (const char* precision : {"float16", "bfloat16"}) {
    const auto half = Wav2LipGenerator::untrained(parse_placement("cuda", precision), fixture_spec());
    const at::Tensor output = half->generate(inputs.mel, inputs.faces);
    EXPECT_EQ(output.scalar_type(), at::kFloat);
    const double error = max_abs_diff(output, fixture("output.f32"));
    std::cout << "[wav2lip cuda " << precision << "] max abs output diff vs float32 reference " << error << "\n";
    // Reduced precision is a reported trade-off, not parity; only a broken path lands near 1.
    EXPECT_LT(error, 0.25) << precision;
  }
}

// Process CPU seconds: on a shared, overloaded machine wall time alone says little.
double cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

// Single-forward timing (not a parity check): the pipeline's CPU batch; HEYGEM_BENCH_BATCH overrides.
TEST(Wav2LipTiming, CpuSingleForward) {
  const char* env = std::getenv("HEYGEM_BENCH_BATCH");
  const int64_t batch = env && *env ? std::atoll(env) : 16;
  ASSERT_GT(batch, 0);
  const Inputs sample = fixture_inputs(false);
  const at::Tensor index = at::arange(batch, at::kLong).remainder(sample.mel.size(0));
  const Inputs inputs{sample.mel.index_select(0, index), sample.faces.index_select(0, index)};
  cpu_generator().generate(inputs.mel, inputs.faces);  // warm-up (oneDNN primitive creation)
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  const at::Tensor out = cpu_generator().generate(inputs.mel, inputs.faces);
  const double cpu_ms = (cpu_seconds() - cpu_start) * 1e3;
  const double wall_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall_start).count();
  ASSERT_EQ(out.size(0), batch);
  std::cout << "[wav2lip timing] cpu float32 batch " << batch << ", " << at::get_num_threads()
            << " intra-op thread(s): wall " << wall_ms << " ms, process cpu " << cpu_ms << " ms ("
            << cpu_ms / static_cast<double>(batch) << " cpu ms/face)\n";
}

}  // namespace
}  // namespace heygem::models
