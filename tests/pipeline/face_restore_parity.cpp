// The --enhance stage end to end on the gfpgan fixture: a frame and its 5 landmarks in, GFPGANer's
// pasted frame out (hash-init weights; tolerance: shared/fixtures/README.md, gfpgan/, "final_frame
// from your own network output").
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "common/errors.hpp"
#include "daemon/media/video_reader.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/face_restore.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"
#include "tests/support/png_bgr.hpp"

namespace heygem::pipeline {
namespace {

const std::string kFolder = "gfpgan";

media::Frame frame_of(const test::BgrImage& image, int padding) {
  media::Frame frame;
  frame.width = static_cast<int>(image.width);
  frame.height = static_cast<int>(image.height);
  frame.stride = frame.width * 3 + padding;  // a decoder's padded rows
  frame.data.assign(static_cast<std::size_t>(frame.stride) * frame.height, 7);
  for (int y = 0; y < frame.height; ++y)
    std::copy_n(image.pixels.data() + static_cast<std::size_t>(y) * frame.width * 3, frame.width * 3,
                frame.data.data() + static_cast<std::size_t>(y) * frame.stride);
  return frame;
}

TEST(FaceRestoreParity, FrameAndLandmarksGiveTheReferencePastedFrame) {
  const auto raw = test::load_raw(kFolder, "landmarks_5.f32");
  FaceToRestore face;
  ASSERT_EQ(raw.f32.size(), face.landmarks.size());
  std::copy(raw.f32.begin(), raw.f32.end(), face.landmarks.begin());
  media::Frame frame = frame_of(test::read_png_bgr(test::fixtures_root() / kFolder / "frame.png"), 32);
  face.frame = &frame;
  const auto restorer = models::GfpganRestorer::untrained(models::Placement{}, test::hash_init_spec(kFolder));
  restore_faces(*restorer, {face});

  const test::BgrImage expected = test::read_png_bgr(test::fixtures_root() / kFolder / "final_frame.png");
  const auto roi = test::manifest(kFolder).at("meta").at("paste").at("roi_x0_y0_x1_y1").get<std::vector<int>>();
  std::size_t differing = 0, outside = 0;
  int worst = 0;
  for (int y = 0; y < frame.height; ++y) {
    for (int x = 0; x < frame.width * 3; ++x) {
      const int got = frame.data[static_cast<std::size_t>(y) * frame.stride + x];
      const int want = expected.pixels[static_cast<std::size_t>(y) * frame.width * 3 + x];
      const bool inside = x / 3 >= roi[0] && x / 3 < roi[2] && y >= roi[1] && y < roi[3];
      if (!inside) outside += got != want;
      differing += got != want;
      worst = std::max(worst, std::abs(got - want));
    }
    for (int pad = frame.width * 3; pad < frame.stride; ++pad)
      ASSERT_EQ(frame.data[static_cast<std::size_t>(y) * frame.stride + pad], 7) << "row padding was written";
  }
  const double fraction = static_cast<double>(differing) / static_cast<double>(expected.pixels.size());
  std::cout << "[face restore stage] " << differing << " values differ (" << fraction * 100 << " %), max " << worst
            << " level(s)\n";
  EXPECT_EQ(outside, 0u);
  EXPECT_LE(worst, 1);
  EXPECT_LE(fraction, 0.15 + 0.0001);
  EXPECT_GT(frame.data.size(), 0u);
}

const models::GfpganRestorer& fixture_restorer() {
  static const auto restorer = models::GfpganRestorer::untrained(models::Placement{}, test::hash_init_spec(kFolder));
  return *restorer;
}

struct Rendered {
  ItemReport report;
  std::vector<media::Frame> frames;
};

Rendered render(const test::TempDir& dir, const std::filesystem::path& audio, const std::filesystem::path& video,
                const ItemOptions& options, const models::FaceDetector& detector, const models::GfpganRestorer* restorer) {
  static const auto generator = [] {
    models::HashInitSpec spec;
    spec.seed = 1;
    spec.gain_log2["output_block.1.weight"] = -9;
    return models::Wav2LipGenerator::untrained(models::Placement{}, spec);
  }();
  Rendered run;
  RunHooks hooks;
  hooks.frame_tap = [&](int64_t, const media::Frame& f) { run.frames.push_back(f); };
  ItemModels models{generator.get(), &detector};
  models.restorer = restorer;
  run.report = run_lip_sync({audio, video, dir.path() / "out.mp4", dir.path()}, options, models, hooks);
  return run;
}

// --enhance in a whole item: every frame with a face is the lip-synced frame restored at the
// landmarks RetinaFace finds in its source frame, and nothing else changes.
TEST(FaceRestoreStage, EnhanceRestoresEveryFaceAfterTheMouthIsPasted) {
  test::TempDir dir;
  const auto video = test::shared_root() / "media" / "grid" / "lbax4n.mpg";
  const auto audio = dir.path() / "tone.wav";
  media::test::run_ffmpeg("-f lavfi -i \"sine=frequency=440:sample_rate=16000:duration=0.2\" '" + audio.string() + "'");
  const auto detector = models::RetinaFaceDetector::from_file(
      test::shared_root() / "models" / "retinaface_mobilenet0.25.pth", models::Placement{});
  ItemOptions options;
  options.encode.preset = "ultrafast";
  options.avatar_cache = false;
  options.detector_batch = 1;  // detections (and landmarks) as the check below computes them, frame by frame
  const Rendered plain = render(dir, audio, video, options, *detector, nullptr);
  const Rendered enhanced = render(dir, audio, video, options, *detector, &fixture_restorer());
  ASSERT_EQ(plain.frames.size(), enhanced.frames.size());
  ASSERT_GT(plain.frames.size(), 0u);
  EXPECT_EQ(enhanced.report.frames_restored, enhanced.report.frames);
  EXPECT_EQ(plain.report.frames_restored, 0);
  ASSERT_NE(enhanced.report.stage("restore"), nullptr);

  media::VideoReader source(video);
  for (std::size_t i = 0; i < plain.frames.size(); ++i) {
    media::Frame decoded;
    ASSERT_TRUE(source.next(decoded));
    const at::Tensor frame = at::from_blob(decoded.data.data(), {decoded.height, decoded.width, 3},
                                           {decoded.stride, 3, 1}, at::kByte).contiguous().unsqueeze(0);
    const auto faces = detector->detect(frame);
    ASSERT_FALSE(faces.at(0).empty()) << "frame " << i;
    media::Frame expected = plain.frames[i];
    FaceToRestore face;
    face.frame = &expected;
    face.landmarks = faces[0].front().landmarks;
    restore_faces(fixture_restorer(), {face});
    EXPECT_EQ(expected.data, enhanced.frames[i].data) << "frame " << i;
    EXPECT_NE(plain.frames[i].data, enhanced.frames[i].data) << "frame " << i << " was not restored";
  }

  // A fixed box has no landmarks: refused before any work, with the reason.
  options.box = FaceBox{60, 200, 100, 260};
  try {
    render(dir, audio, video, options, *detector, &fixture_restorer());
    FAIL() << "--enhance with --box was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("landmarks"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace heygem::pipeline
