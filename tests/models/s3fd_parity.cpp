// S3FD against Wav2Lip's reference (fixtures/s3fd, hash-init weights): the network's raw outputs per
// level, and the post-processing run on the reference's STORED outputs (candidates, NMS, final box),
// so float32 noise in our network cannot flip a borderline box.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "daemon/models/detection_post.hpp"
#include "daemon/models/hash_init.hpp"
#include "daemon/models/s3fd.hpp"
#include "daemon/models/s3fd_net.hpp"
#include "tests/support/device.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"
#include "tests/support/png_bgr.hpp"

namespace heygem::models {
namespace {

const char* const kFolder = "s3fd";

at::Tensor fixture_tensor(const std::string& file) {
  auto raw = test::load_raw(kFolder, file);
  return at::from_blob(raw.f32.data(), raw.shape, at::kFloat).clone();
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

HashInitSpec fixture_spec() { return test::hash_init_spec(kFolder); }

const S3fdDetector& hash_init_detector() {
  static const auto detector =
      std::make_unique<S3fdDetector>(hash_init(s3fd_layout(), fixture_spec()), Placement{}, "hash-init");
  return *detector;
}

// The same weights on the device the parity run targets (HEYGEM_TEST_DEVICE; CPU by default).
const S3fdDetector& device_detector() {
  static const auto detector =
      std::make_unique<S3fdDetector>(hash_init(s3fd_layout(), fixture_spec()), test::test_placement(), "hash-init");
  return *detector;
}

// Same rows in the same order; coordinates and scores within rel * max(|x|, 1).
void expect_same_rows(const at::Tensor& got, const at::Tensor& want, double rel) {
  ASSERT_EQ(got.dim(), 2);
  ASSERT_EQ(got.size(0), want.size(0));
  ASSERT_EQ(got.size(1), want.size(1));
  const auto g = got.to(at::kDouble), w = want.to(at::kDouble);
  const auto allowed = w.abs().clamp_min(1.0) * rel;
  const auto excess = ((g - w).abs() - allowed).max().item<double>();
  EXPECT_LE(excess, 0.0) << "max |diff| " << max_abs_diff(g, w);
}

TEST(S3fdParity, LayoutMatchesReferenceKeys) {
  std::ifstream in(test::fixtures_root() / kFolder / "keys.json");
  const auto keys = nlohmann::json::parse(in);
  const auto layout = s3fd_layout();
  ASSERT_EQ(layout.size(), keys.at("entries").size());
  ASSERT_EQ(static_cast<int64_t>(layout.size()), keys.at("count").get<int64_t>());
  for (size_t k = 0; k < layout.size(); ++k) {
    const auto& entry = keys["entries"][k];
    EXPECT_EQ(layout[k].first, entry.at("name").get<std::string>()) << "entry " << k;
    EXPECT_EQ(layout[k].second.sizes().vec(), entry.at("shape").get<std::vector<int64_t>>()) << layout[k].first;
  }
}

TEST(S3fdParity, PreprocessingMatchesReferenceInput) {
  const auto image = test::read_png_bgr(test::fixtures_root() / kFolder / "frame.png");
  const auto frame = at::from_blob(const_cast<uint8_t*>(image.pixels.data()), {1, image.height, image.width, 3},
                                   at::kByte);
  const auto input = device_detector().preprocess(frame);
  const auto expected = fixture_tensor("input.f32");
  ASSERT_EQ(input.sizes(), expected.sizes());
  EXPECT_TRUE(input.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_EQ(max_abs_diff(input, expected), 0.0);
}

TEST(S3fdParity, RawOutputsMatchReferencePerLevel) {
  const auto& detector = device_detector();
  // The reference hands the network a channels-last view; same layout, same kernels.
  const auto input =
      fixture_tensor("input.f32").to(detector.placement().device).contiguous(at::MemoryFormat::ChannelsLast);
  const auto raw = detector.forward(input);
  const auto probabilities = S3fdDetector::class_probabilities(raw);
  ASSERT_EQ(raw.cls_logits.size(), static_cast<size_t>(S3fdNet::kLevels));
  const auto levels = test::manifest(kFolder).at("meta").at("levels");
  for (int level = 1; level <= S3fdNet::kLevels; ++level) {
    SCOPED_TRACE("level " + std::to_string(level));
    const auto suffix = std::to_string(level) + ".f32";
    const auto logits = fixture_tensor("cls" + std::to_string(level) + "_logits.f32");
    const auto probs = fixture_tensor("cls" + suffix);
    const auto reg = fixture_tensor("reg" + suffix);
    const auto shape_hw = levels.at(level - 1).at("shape_hw").get<std::vector<int64_t>>();
    ASSERT_EQ(raw.cls_logits[level - 1].sizes(), logits.sizes());
    EXPECT_EQ(logits.size(2), shape_hw.at(0));
    EXPECT_EQ(logits.size(3), shape_hw.at(1));
    EXPECT_LE(max_abs_diff(raw.cls_logits[level - 1], logits), 5e-5 * logits.abs().max().item<double>());
    EXPECT_LE(max_abs_diff(raw.reg[level - 1], reg), 5e-5 * reg.abs().max().item<double>());
    EXPECT_LE(max_abs_diff(probabilities[level - 1], probs), 1e-5);
  }
}

std::vector<at::Tensor> stored_face_probabilities(std::vector<at::Tensor>& reg) {
  std::vector<at::Tensor> face;
  for (int level = 1; level <= S3fdNet::kLevels; ++level) {
    face.push_back(fixture_tensor("cls" + std::to_string(level) + ".f32").select(1, 1));
    reg.push_back(fixture_tensor("reg" + std::to_string(level) + ".f32"));
  }
  return face;
}

TEST(S3fdParity, CandidatesFromStoredOutputs) {
  const auto meta = test::manifest(kFolder).at("meta");
  std::vector<at::Tensor> reg;
  const auto face = stored_face_probabilities(reg);
  const auto candidates = detection::s3fd_candidates(face, reg, meta.at("candidate_threshold").get<double>());
  ASSERT_EQ(candidates.size(), 1u);
  const auto expected = fixture_tensor("candidates.f32");
  EXPECT_EQ(expected.size(0), meta.at("num_candidates").get<int64_t>());
  expect_same_rows(candidates[0], expected, 1e-5);
}

TEST(S3fdParity, DetectionsAndFinalBoxFromStoredCandidates) {
  const auto meta = test::manifest(kFolder).at("meta");
  detection::S3fdThresholds thresholds;
  thresholds.nms = meta.at("nms_threshold").get<float>();
  thresholds.score = meta.at("score_threshold").get<double>();
  const auto detections = detection::s3fd_select(fixture_tensor("candidates.f32"), thresholds);
  ASSERT_EQ(detections.size(0), meta.at("num_detections_tiebreak_total").get<int64_t>());

  const auto stored = fixture_tensor("detections_tiebreak.f32");
  expect_same_rows(detections.narrow(0, 0, stored.size(0)), stored, 1e-5);
  if (meta.at("detections_equal_tiebreak").get<bool>())
    expect_same_rows(detections.narrow(0, 0, stored.size(0)), fixture_tensor("detections.f32"), 1e-5);

  // The Wav2Lip wrapper: first row, negatives clipped to 0, truncated to int.
  const auto final_box = test::load_raw(kFolder, "final_box_tiebreak.i64").i64;
  ASSERT_EQ(final_box.size(), 4u);
  for (int64_t c = 0; c < 4; ++c)
    EXPECT_EQ(static_cast<int64_t>(std::max(0.0f, detections[0][c].item<float>())), final_box[static_cast<size_t>(c)])
        << "coordinate " << c;
}

TEST(S3fdParity, BatchedDetectEqualsSingleFrames) {
  const auto& detector = hash_init_detector();
  const auto image = test::read_png_bgr(test::fixtures_root() / kFolder / "frame.png");
  const auto frame = at::from_blob(const_cast<uint8_t*>(image.pixels.data()), {1, image.height, image.width, 3},
                                   at::kByte).clone();
  const auto mirrored = frame.flip({2}).contiguous();
  const auto batch = detector.detect(at::cat({frame, mirrored}, 0));
  ASSERT_EQ(batch.size(), 2u);
  const auto single = detector.detect(frame);
  const auto single_mirrored = detector.detect(mirrored);
  // The batch may pick other kernels (last-bit differences), so boxes near a threshold may differ:
  // compare the best face only.
  ASSERT_FALSE(single.at(0).empty());
  ASSERT_FALSE(single_mirrored.at(0).empty());
  ASSERT_FALSE(batch[0].empty());
  ASSERT_FALSE(batch[1].empty());
  for (const auto& [got, want] : {std::pair{batch[0].front(), single[0].front()},
                                  std::pair{batch[1].front(), single_mirrored[0].front()}}) {
    EXPECT_NEAR(got.x1, want.x1, 0.01);
    EXPECT_NEAR(got.y1, want.y1, 0.01);
    EXPECT_NEAR(got.x2, want.x2, 0.01);
    EXPECT_NEAR(got.y2, want.y2, 0.01);
    EXPECT_NEAR(got.score, want.score, 1e-5);
    EXPECT_FALSE(got.has_landmarks);
  }
  const auto meta = test::manifest(kFolder).at("meta");
  for (const auto& frame_detections : batch)
    for (const auto& d : frame_detections) EXPECT_GT(d.score, meta.at("score_threshold").get<double>());
}

}  // namespace
}  // namespace heygem::models
