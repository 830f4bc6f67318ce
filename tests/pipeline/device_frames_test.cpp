// The GPU frame path's colour conversions (pipeline/device_frames.hpp), run on the CPU against the
// swscale conversions of the CPU path, on real GRID frames: NV12 -> BGR against the reader's
// conversion of the same decoded planes, BGR -> YUV 4:2:0 against the writer's. The bounds are the
// ones the GPU path is held to (docs/gpu.md); the CUDA run of the same functions is
// GpuFramePath.* in the parity suite.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>

#include "common/errors.hpp"
#include "daemon/media/ffmpeg_raii.hpp"
#include "daemon/media/pixel_converter.hpp"
#include "daemon/media/stream_decoder.hpp"
#include "daemon/pipeline/device_frames.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::pipeline {
namespace {

constexpr int kFrames = 12;
// Largest and mean absolute difference from swscale, in 8-bit levels.
constexpr int kMaxBgrLevels = 0;  // swscale's x86 converter reproduced exactly
constexpr double kMeanBgrLevels = 0.0;
constexpr int kMaxLumaLevels = 1;
constexpr int kMaxChromaLevels = 1;
constexpr double kMeanChromaLevels = 0.05;

std::filesystem::path grid_clip() { return test::shared_root() / "media" / "grid" / "lbax4n.mpg"; }

// An AVFrame's plane as a [rows, cols] uint8 tensor copy.
at::Tensor plane(const AVFrame* frame, int index, int rows, int cols) {
  return at::from_blob(frame->data[index], {rows, cols}, {frame->linesize[index], 1}, at::kByte).clone();
}

struct Difference {
  int max = 0;
  double mean = 0;
};

Difference compare(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor d = (a.to(at::kInt) - b.to(at::kInt)).abs();
  return {d.max().item<int>(), d.to(at::kDouble).mean().item<double>()};
}

// Decodes the clip's first frames on the CPU (planar 4:2:0) and hands each to `check`.
template <typename Check>
void for_decoded_frames(Check&& check) {
  media::ffmpeg::StreamDecoder decoder(grid_clip(), AVMEDIA_TYPE_VIDEO);
  media::ffmpeg::FramePtr frame = media::ffmpeg::make_frame();
  int frames = 0;
  while (frames < kFrames && decoder.receive(frame.get())) {
    ASSERT_EQ(frame->format, AV_PIX_FMT_YUV420P);
    check(frame.get());
    ++frames;
  }
  ASSERT_EQ(frames, kFrames);
}

TEST(DeviceFrames, Nv12ToBgrEqualsTheReadersConversion) {
  media::PixelConverter reader_conversion(media::kReaderSwsFlags, 0, grid_clip());
  Difference worst;
  for_decoded_frames([&](const AVFrame* frame) {
    const int width = frame->width, height = frame->height;
    media::ffmpeg::FramePtr bgr = media::ffmpeg::make_frame();
    bgr->format = AV_PIX_FMT_BGR24;
    bgr->width = width;
    bgr->height = height;
    ASSERT_GE(av_frame_get_buffer(bgr.get(), 64), 0);
    reader_conversion.convert(frame, bgr.get());
    const at::Tensor expected = at::from_blob(bgr->data[0], {height, width, 3}, {bgr->linesize[0], 3, 1}, at::kByte);
    // NVDEC's layout of the same planes: U and V interleaved
    const at::Tensor chroma = at::stack({plane(frame, 1, (height + 1) / 2, (width + 1) / 2),
                                         plane(frame, 2, (height + 1) / 2, (width + 1) / 2)}, 2);
    const Difference d = compare(nv12_to_bgr(plane(frame, 0, height, width), chroma), expected);
    worst.max = std::max(worst.max, d.max);
    worst.mean = std::max(worst.mean, d.mean);
  });
  RecordProperty("max_levels", worst.max);
  std::printf("NV12 -> BGR against swscale: largest difference %d levels, mean %.3f\n", worst.max, worst.mean);
  EXPECT_LE(worst.max, kMaxBgrLevels);
  EXPECT_LE(worst.mean, kMeanBgrLevels);
}

TEST(DeviceFrames, Yuv420StaysWithinAFewLevelsOfTheWritersConversion) {
  media::PixelConverter reader_conversion(media::kReaderSwsFlags, 1, grid_clip());
  media::PixelConverter writer_conversion(media::kWriterSwsFlags, 1, grid_clip());
  Difference luma, chroma;
  for_decoded_frames([&](const AVFrame* frame) {
    // a BGR frame as the pipeline has it, then the writer's conversion and the GPU path's
    const int width = frame->width / 2 * 2, height = frame->height / 2 * 2;
    media::ffmpeg::FramePtr bgr = media::ffmpeg::make_frame();
    bgr->format = AV_PIX_FMT_BGR24;
    bgr->width = frame->width;
    bgr->height = frame->height;
    ASSERT_GE(av_frame_get_buffer(bgr.get(), 64), 0);
    reader_conversion.convert(frame, bgr.get());
    media::ffmpeg::FramePtr yuv = media::ffmpeg::make_frame();
    yuv->format = AV_PIX_FMT_YUV420P;
    yuv->width = width;
    yuv->height = height;
    ASSERT_GE(av_frame_get_buffer(yuv.get(), 64), 0);
    media::ffmpeg::FramePtr cropped(av_frame_clone(bgr.get()));
    cropped->width = width;
    cropped->height = height;
    writer_conversion.convert(cropped.get(), yuv.get());

    const at::Tensor image =
        at::from_blob(bgr->data[0], {frame->height, frame->width, 3}, {bgr->linesize[0], 3, 1}, at::kByte);
    const at::Tensor planes = bgr_to_yuv420(image, width, height);
    const int64_t luma_size = int64_t{width} * height, chroma_size = luma_size / 4;
    const Difference y = compare(planes.narrow(0, 0, luma_size).view({height, width}), plane(yuv.get(), 0, height, width));
    const Difference u = compare(planes.narrow(0, luma_size, chroma_size).view({height / 2, width / 2}),
                                 plane(yuv.get(), 1, height / 2, width / 2));
    const Difference v = compare(planes.narrow(0, luma_size + chroma_size, chroma_size).view({height / 2, width / 2}),
                                 plane(yuv.get(), 2, height / 2, width / 2));
    luma.max = std::max(luma.max, y.max);
    luma.mean = std::max(luma.mean, y.mean);
    chroma.max = std::max({chroma.max, u.max, v.max});
    chroma.mean = std::max({chroma.mean, u.mean, v.mean});
  });
  std::printf("BGR -> YUV 4:2:0 against swscale: luma largest %d mean %.3f, chroma largest %d mean %.3f\n", luma.max,
              luma.mean, chroma.max, chroma.mean);
  EXPECT_LE(luma.max, kMaxLumaLevels);
  EXPECT_LE(chroma.max, kMaxChromaLevels);
  EXPECT_LE(chroma.mean, kMeanChromaLevels);
}

TEST(DeviceFrames, DownloadsKeepEveryByte) {
  const at::Tensor bgr = at::randint(0, 256, {6, 10, 3}, at::kByte);
  const media::Frame frame = download_bgr(bgr);
  ASSERT_EQ(frame.width, 10);
  ASSERT_EQ(frame.height, 6);
  EXPECT_EQ(std::memcmp(frame.data.data(), bgr.contiguous().data_ptr<uint8_t>(), frame.data.size()), 0);
  const at::Tensor planes = bgr_to_yuv420(bgr, 10, 6);
  ASSERT_EQ(planes.numel(), 10 * 6 * 3 / 2);
  const media::Yuv420Picture picture = yuv420_picture(planes, 10, 6);
  ASSERT_EQ(picture.size, static_cast<size_t>(planes.numel()));
  EXPECT_EQ(std::memcmp(picture.planes, planes.data_ptr<uint8_t>(), picture.size), 0);
  EXPECT_EQ(picture.planes, planes.data_ptr<uint8_t>());  // a contiguous host tensor is not copied
  const at::Tensor strided = at::stack({planes, planes}, 1).select(1, 0);  // not contiguous
  const media::Yuv420Picture copied = yuv420_picture(strided, 10, 6);
  EXPECT_EQ(std::memcmp(copied.planes, planes.data_ptr<uint8_t>(), copied.size), 0);
  EXPECT_THROW(bgr_to_yuv420(bgr, 9, 6), Error);
}

TEST(DeviceFrames, ABatchConvertsAsItsFramesDoOneByOne) {
  const at::Tensor frames = at::randint(0, 256, {3, 8, 12, 3}, at::kByte);
  const at::Tensor batch = bgr_to_yuv420(frames, 12, 8);
  ASSERT_EQ(batch.size(0), 3);
  for (int64_t i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(batch[i], bgr_to_yuv420(frames[i], 12, 8))) << "frame " << i;
}

}  // namespace
}  // namespace heygem::pipeline
