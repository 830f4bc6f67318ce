// The GPU frame path (pipeline/device_frames.hpp) against the CPU frame path, on the device the
// parity suite runs on (HEYGEM_TEST_DEVICE=cuda; skipped on the CPU): an H.264 job with the models
// on the GPU, NVDEC decoding and the frames kept there, must hand its encoder the frames a job on
// the CPU renders, outside the face box byte for byte and inside it within the e2e tolerance (the
// generator's CUDA arithmetic); the conversions on the GPU equal the same ops on the CPU.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <map>

#include "daemon/media/video_reader.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/device_frames.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/device.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

// shared/fixtures/e2e/README.md's bounds for the generator's arithmetic on another device.
constexpr int kMaxBoxLevels = 8;
constexpr double kMaxBoxMean = 0.25;

struct Job {
  std::filesystem::path clip, audio;
  FaceBox box;
  models::HashInitSpec weights;
  int batch = 0;
};

Job read_job() {
  const auto meta = test::manifest("e2e").at("meta");
  const auto box = meta.at("box_top_bottom_left_right").get<std::vector<int>>();
  return {test::shared_root() / "media" / "grid" / (meta.at("video_clip").get<std::string>() + ".mpg"),
          test::fixtures_root() / "e2e" / "audio.wav", FaceBox{box.at(0), box.at(1), box.at(2), box.at(3)},
          test::hash_init_spec("e2e"), meta.at("wav2lip_batch_size").get<int>()};
}

struct Rendered {
  ItemReport report;
  std::map<int64_t, media::Frame> frames;
};

Rendered render(const Job& job, const std::filesystem::path& video, const models::Placement& placement,
                const std::filesystem::path& output) {
  auto generator = models::Wav2LipGenerator::untrained(placement, job.weights);
  ItemOptions options;
  options.box = job.box;
  options.generator_batch = job.batch;
  Rendered rendered;
  RunHooks hooks;
  hooks.frame_tap = [&](int64_t index, const media::Frame& frame) { rendered.frames[index] = frame; };
  rendered.report = run_lip_sync({job.audio, video, output, output.parent_path()}, options, {generator.get(), nullptr}, hooks);
  return rendered;
}

TEST(GpuFramePath, ConversionsOnTheGpuEqualTheCpusOps) {
  const models::Placement placement = test::test_placement();
  if (placement.device.is_cpu()) GTEST_SKIP() << "the GPU frame path needs HEYGEM_TEST_DEVICE=cuda";
  const at::Tensor luma = at::randint(0, 256, {288, 360}, at::kByte);
  const at::Tensor chroma = at::randint(0, 256, {144, 180, 2}, at::kByte);
  const at::Tensor on_cpu = nv12_to_bgr(luma, chroma);
  EXPECT_TRUE(at::equal(nv12_to_bgr(luma.to(placement.device), chroma.to(placement.device)).cpu(), on_cpu));
  const at::Tensor yuv_cpu = bgr_to_yuv420(on_cpu, 360, 288);
  const at::Tensor yuv_gpu = bgr_to_yuv420(on_cpu.to(placement.device), 360, 288).cpu();
  const int worst = (yuv_cpu.to(at::kInt) - yuv_gpu.to(at::kInt)).abs().max().item<int>();
  std::printf("GPU frame path: BGR -> YUV on the GPU against the CPU: largest difference %d\n", worst);
  EXPECT_LE(worst, 1);
}

TEST(GpuFramePath, AnH264JobOnTheGpuRendersTheCpuJobsFrames) {
  const models::Placement placement = test::test_placement();
  if (placement.device.is_cpu()) GTEST_SKIP() << "the GPU frame path needs HEYGEM_TEST_DEVICE=cuda";
  const Job job = read_job();
  test::TempDir dir;
  const auto clip = dir.path() / "clip.mp4";  // what NVDEC decodes (the GRID clips are MPEG-1)
  media::test::run_ffmpeg("-i '" + job.clip.string() + "' -an -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p '" +
                          clip.string() + "'");
  const Rendered gpu = render(job, clip, placement, dir.path() / "gpu.mp4");
  const Rendered cpu = render(job, clip, models::Placement{}, dir.path() / "cpu.mp4");

  std::printf("GPU frame path: %s, %lld frames\n", gpu.report.frame_path.c_str(), static_cast<long long>(gpu.report.frames));
  EXPECT_EQ(gpu.report.frame_path, placement.device.str() + " (NVDEC)");
  EXPECT_EQ(cpu.report.frame_path, "host");
  ASSERT_EQ(gpu.frames.size(), cpu.frames.size());
  double box_sum = 0;
  int64_t box_values = 0;
  int box_worst = 0;
  for (const auto& [index, ours] : gpu.frames) {
    const media::Frame& theirs = cpu.frames.at(index);
    ASSERT_EQ(ours.width, theirs.width);
    ASSERT_EQ(ours.height, theirs.height);
    for (int y = 0; y < ours.height; ++y)
      for (int x = 0; x < ours.width * 3; ++x) {
        const int d = std::abs(int{ours.row(y)[x]} - int{theirs.row(y)[x]});
        const bool in_box = y >= job.box.top && y < job.box.bottom && x / 3 >= job.box.left && x / 3 < job.box.right;
        if (!in_box) {
          ASSERT_EQ(d, 0) << "frame " << index << " differs outside the box at " << x / 3 << "," << y;
          continue;
        }
        box_sum += d;
        ++box_values;
        box_worst = std::max(box_worst, d);
      }
  }
  const double box_mean = box_sum / static_cast<double>(std::max<int64_t>(1, box_values));
  std::printf("GPU frame path against the CPU job: in the box largest %d, mean %.4f levels\n", box_worst, box_mean);
  EXPECT_LE(box_worst, kMaxBoxLevels);
  EXPECT_LE(box_mean, kMaxBoxMean);

  media::VideoReader output(dir.path() / "gpu.mp4");
  int64_t decoded = 0;
  for (media::Frame frame; output.next(frame);) ++decoded;
  EXPECT_EQ(decoded, gpu.report.frames);
}

}  // namespace
}  // namespace heygem::pipeline
