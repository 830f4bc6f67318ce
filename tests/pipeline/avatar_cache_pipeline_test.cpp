// The avatar cache in the pipeline, on a GRID clip with RetinaFace on the CPU: a run with new audio
// detects and stores the clip's faces; the next run with other, shorter audio finds them, runs
// without any detector (none is passed: a miss would fail), and hands the encoder the same bytes as
// a run that detected the faces itself (the video is cut at another frame than in the storing run,
// so the box smoothing at the cut is redone, not cached). The audio is short to keep CI quick.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>

#include "common/sha256.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/pipeline/avatar_cache.hpp"
#include "daemon/pipeline/lip_sync.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

struct Rendered {
  ItemReport report;
  std::map<int64_t, media::Frame> frames;  // as handed to the encoder
};

Rendered render(const test::TempDir& dir, const std::filesystem::path& audio, const std::filesystem::path& video,
           const ItemOptions& options, const ItemModels& models) {
  Rendered run;
  RunHooks hooks;
  hooks.frame_tap = [&](int64_t i, const media::Frame& f) { run.frames[i] = f; };
  run.report = run_lip_sync({audio, video, dir.path() / "out.mp4", dir.path()}, options, models, hooks);
  return run;
}

void print(const char* label, const ItemReport& report) {
  const StageTiming* detect = report.stage("detect");
  std::printf("avatar cache %-28s %3lld frames, wall %6.2f s, detect stage %6.2f s busy%s (cache: %s)\n", label,
              static_cast<long long>(report.frames), report.wall_seconds, detect->busy_seconds,
              detect->cached ? ", cached" : "", report.avatar_cache.c_str());
}

// The e2e fixture's GRID clip, RetinaFace and the hash-init generator on the CPU, an avatar cache in
// a temp folder, and 1 s of another speaker's audio (25 frames of the clip).
class AvatarCachePipeline : public ::testing::Test {
 protected:
  AvatarCachePipeline() {
    media::test::run_ffmpeg("-i '" + (grid_ / "bbaf2n.mpg").string() + "' -t 1 -vn -ac 1 -ar 16000 '" + speech_.string() + "'");
    models_.generator = generator_.get();
    models_.detector = detector_.get();
    models_.avatar_cache = &cache_;
    models_.detector_identity = "retinaface " + weights_identity(weights_) + " cpu float32";
    options_.encode.preset = "ultrafast";
  }

  // A sine tone of `seconds` (25 frames a second of the clip).
  std::filesystem::path tone(double seconds) const {
    const auto file = dir_.path() / ("tone-" + std::to_string(seconds) + ".wav");
    media::test::run_ffmpeg("-f lavfi -i \"sine=frequency=300:sample_rate=16000:duration=" + std::to_string(seconds) +
                            "\" '" + file.string() + "'");
    return file;
  }

  test::TempDir dir_;
  std::filesystem::path weights_ = test::shared_root() / "models" / "retinaface_mobilenet0.25.pth";
  std::unique_ptr<models::RetinaFaceDetector> detector_ = models::RetinaFaceDetector::from_file(weights_, models::Placement{});
  std::unique_ptr<models::Wav2LipGenerator> generator_ =
      models::Wav2LipGenerator::untrained(models::Placement{}, test::hash_init_spec("e2e"));
  std::filesystem::path grid_ = test::shared_root() / "media" / "grid";
  std::filesystem::path video_ =
      grid_ / (test::manifest("e2e").at("meta").at("video_clip").get<std::string>() + ".mpg");
  std::filesystem::path speech_ = dir_.path() / "speech.wav";
  AvatarCache cache_{{dir_.path() / "avatar-cache", 1 << 20}};
  ItemModels models_;
  ItemOptions options_;
};

TEST_F(AvatarCachePipeline, NewAudioOnACachedVideoSkipsDetectionWithIdenticalFrames) {
  const test::TempDir& dir = dir_;
  const auto& video = video_;
  const auto& speech = speech_;
  const auto longer = tone(1.2);  // the storing run sees 30 frames
  const AvatarCache& cache = cache_;
  const ItemModels& models = models_;
  const ItemOptions& options = options_;

  // The reference: the item bypasses the cache and detects every frame itself.
  ItemOptions bypass = options;
  bypass.avatar_cache = false;
  const Rendered fresh = render(dir, speech, video, bypass, models);
  EXPECT_EQ(fresh.report.avatar_cache, "off");
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() / "avatar-cache")) << "a bypassing item stored its faces";

  const Rendered first = render(dir, longer, video, options, models);
  EXPECT_EQ(first.report.avatar_cache, "miss");
  EXPECT_FALSE(first.report.stage("detect")->cached);
  EXPECT_GT(first.report.stage("detect")->busy_seconds, 0);

  ItemModels without_detector = models;
  without_detector.detector = nullptr;  // the run can only succeed if it never needs one
  const Rendered cached = render(dir, speech, video, options, without_detector);
  EXPECT_EQ(cached.report.avatar_cache, "hit");
  EXPECT_TRUE(cached.report.stage("detect")->cached);
  EXPECT_EQ(cached.report.stage("detect")->busy_seconds, 0);
  EXPECT_EQ(cached.report.frames_without_face, fresh.report.frames_without_face);
  ASSERT_EQ(cached.frames.size(), fresh.frames.size());
  for (const auto& [index, frame] : fresh.frames)
    ASSERT_EQ(cached.frames.at(index).data, frame.data) << "frame " << index << " differs from a fresh detection";

  print("off (detects, reference)", fresh.report);
  print("miss (detects, stores)", first.report);
  print("hit (no detector)", cached.report);
  const auto lookup_start = std::chrono::steady_clock::now();
  const AvatarKey key{sha256_file_hex(video), models.detector_identity, 25, 1, 4};
  EXPECT_TRUE(cache.load(key)) << "the entry is not keyed as the test assumes (25 fps, batch 4)";
  std::printf("avatar cache: a hit costs %.1f ms (SHA-256 of the %ju-byte video and reading the entry)\n",
              1e3 * std::chrono::duration<double>(std::chrono::steady_clock::now() - lookup_start).count(),
              static_cast<std::uintmax_t>(std::filesystem::file_size(video)));
  const double saved = fresh.report.stage("detect")->busy_seconds;
  std::printf("avatar cache: detection time saved on the CPU: %.2f s of %.2f s wall (%.0f%%), wall %.2f s -> %.2f s\n",
              saved, fresh.report.wall_seconds, 100 * saved / fresh.report.wall_seconds, fresh.report.wall_seconds,
              cached.report.wall_seconds);
}

// The same presenter video with new audio that is longer than any earlier render: the stored faces
// are reused (whole detector batches) and only the new frames are detected; the encoder gets the
// same bytes as a run that detected everything, and the longer entry is stored for the next run.
TEST_F(AvatarCachePipeline, LongerAudioReusesTheStoredFacesAndDetectsOnlyTheNewFrames) {
  const test::TempDir& dir = dir_;
  const auto& video = video_;
  const auto& shorter = speech_;  // 25 frames
  const auto longer = tone(1.6);  // 40 frames
  const ItemModels& models = models_;
  const ItemOptions& options = options_;
  ItemOptions bypass = options;
  bypass.avatar_cache = false;

  const Rendered fresh = render(dir, longer, video, bypass, models);
  const Rendered stored = render(dir, shorter, video, options, models);
  EXPECT_EQ(stored.report.avatar_cache, "miss");
  const Rendered extended = render(dir, longer, video, options, models);
  EXPECT_EQ(extended.report.avatar_cache, "partial");
  EXPECT_GT(extended.report.stage("detect")->busy_seconds, 0) << "the new frames were not detected";
  EXPECT_LT(extended.report.stage("detect")->busy_seconds, fresh.report.stage("detect")->busy_seconds)
      << "the stored frames were detected again";
  ASSERT_EQ(extended.frames.size(), fresh.frames.size());
  for (const auto& [index, frame] : fresh.frames)
    ASSERT_EQ(extended.frames.at(index).data, frame.data) << "frame " << index << " differs from a fresh detection";

  ItemModels without_detector = models;
  without_detector.detector = nullptr;
  const Rendered again = render(dir, longer, video, options, without_detector);
  EXPECT_EQ(again.report.avatar_cache, "hit") << "the longer entry was not stored";
  print("off (detects 40, reference)", fresh.report);
  print("partial (reuses 24, detects 16)", extended.report);
}

}  // namespace
}  // namespace heygem::pipeline
