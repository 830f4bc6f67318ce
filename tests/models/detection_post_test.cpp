// Detector post-processing and input checks on small hand-made cases: the references' conventions
// (+1 areas, IoU <= threshold kept, NaN overlaps dropped, strict score thresholds, stable ties,
// level/row-major candidate order) and clear errors for bad frames, placements and weights.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "common/errors.hpp"
#include "daemon/models/detection_post.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/retinaface_net.hpp"
#include "daemon/models/s3fd.hpp"
#include "daemon/models/s3fd_net.hpp"

namespace heygem::models::detection {
namespace {

at::Tensor rows(std::vector<std::vector<float>> values) {
  auto out = at::empty({static_cast<int64_t>(values.size()), static_cast<int64_t>(values.at(0).size())}, at::kFloat);
  for (size_t i = 0; i < values.size(); ++i)
    for (size_t j = 0; j < values[i].size(); ++j) out[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = values[i][j];
  return out;
}

template <typename F>
void expect_error(ErrorCode code, const std::string& fragment, F&& call) {
  try {
    call();
    FAIL() << "no error, expected one mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(GreedyNms, UsesPlusOneAreas) {
  // Without the +1 the IoU is 36/126 = 0.286 (kept); with it 50/150 = 0.333 (suppressed).
  const auto boxes = rows({{0, 0, 9, 9}, {5, 0, 14, 9}});
  EXPECT_EQ(greedy_nms(boxes, {0, 1}, 0.3f), (std::vector<int64_t>{0}));
  EXPECT_EQ(greedy_nms(boxes, {0, 1}, 0.34f), (std::vector<int64_t>{0, 1}));
}

TEST(GreedyNms, KeepsOverlapEqualToThresholdAndVisitsInOrder) {
  // IoU exactly 100/200 = 0.5.
  const auto boxes = rows({{0, 0, 9, 9}, {0, 0, 9, 19}, {100, 100, 109, 109}});
  EXPECT_EQ(greedy_nms(boxes, {1, 0, 2}, 0.5f), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(greedy_nms(boxes, {2, 1, 0}, 0.49f), (std::vector<int64_t>{2, 1}));
}

TEST(GreedyNms, SuppressedBoxesDoNotSuppressOthers) {
  // b overlaps a (suppressed by it); c overlaps only b, so c survives.
  const auto boxes = rows({{0, 0, 9, 9}, {4, 0, 13, 9}, {9, 0, 18, 9}});
  EXPECT_EQ(greedy_nms(boxes, {0, 1, 2}, 0.3f), (std::vector<int64_t>{0, 2}));
}

TEST(GreedyNms, DropsNaNOverlapsLikeTheReference) {
  // Two degenerate boxes: 0 / 0 overlap; numpy's `ovr <= thresh` is false for NaN, so it goes.
  const auto boxes = rows({{0, 0, -1, -1}, {0, 0, -1, -1}});
  EXPECT_EQ(greedy_nms(boxes, {0, 1}, 0.3f), (std::vector<int64_t>{0}));
}

TEST(GreedyNms, RejectsBadInput) {
  expect_error(ErrorCode::invalid_argument, "out of range", [] { greedy_nms(rows({{0, 0, 1, 1}}), {3}, 0.3f); });
  expect_error(ErrorCode::invalid_argument, "float32", [] { greedy_nms(at::zeros({2, 4}, at::kDouble), {0}, 0.3f); });
}

TEST(StableDescendingOrder, TiesKeepAscendingIndex) {
  const auto scores = at::tensor({0.5f, 0.9f, 0.5f, 0.7f, 0.9f});
  EXPECT_EQ(stable_descending_order(scores), (std::vector<int64_t>{1, 4, 3, 0, 2}));
}

TEST(DecodeBoxes, FollowsTheSsdEncoding) {
  const auto priors = rows({{50, 40, 16, 8}});
  const auto loc = rows({{0.5f, -1.0f, std::log(2.0f) / 0.2f, 0.0f}});
  const auto box = decode_boxes(loc, priors);
  // centre (50 + 0.5*0.1*16, 40 - 0.1*8) = (50.8, 39.2), size (32, 8)
  const double want[4] = {50.8 - 16, 39.2 - 4, 50.8 + 16, 39.2 + 4};
  for (int64_t c = 0; c < 4; ++c) EXPECT_NEAR(box[0][c].item<float>(), want[c], 1e-4) << c;
  const auto points = decode_landmarks(rows({{1, 0, 0, 1, -1, 0, 0, -1, 0, 0}}), priors);
  const double want_points[10] = {51.6, 40, 50, 40.8, 48.4, 40, 50, 39.2, 50, 40};
  for (int64_t c = 0; c < 10; ++c) EXPECT_NEAR(points[0][c].item<float>(), want_points[c], 1e-5) << c;
}

TEST(S3fdAnchors, StrideCentresAndSizesRowMajor) {
  const auto anchors = s3fd_level_anchors(2, 3, 5, at::TensorOptions());  // stride 16
  ASSERT_EQ(anchors.sizes(), (at::IntArrayRef{15, 4}));
  for (int64_t h = 0; h < 3; ++h)
    for (int64_t w = 0; w < 5; ++w) {
      const auto a = anchors[h * 5 + w];
      EXPECT_EQ(a[0].item<float>(), 8.0f + 16.0f * w);
      EXPECT_EQ(a[1].item<float>(), 8.0f + 16.0f * h);
      EXPECT_EQ(a[2].item<float>(), 64.0f);
      EXPECT_EQ(a[3].item<float>(), 64.0f);
    }
}

TEST(S3fdCandidates, PerFrameStrictThresholdLevelThenRowMajor) {
  // Two levels, two frames; zero regressions decode to the anchors themselves.
  auto level0 = at::zeros({2, 2, 3}), level1 = at::zeros({2, 1, 2});
  level0[0][1][2] = 0.9f;
  level0[0][0][1] = 0.06f;
  level0[0][1][0] = static_cast<float>(0.05);  // equal to the threshold: not a candidate
  level1[0][0][1] = 0.7f;
  level1[1][0][0] = 0.3f;
  const std::vector<at::Tensor> reg{at::zeros({2, 4, 2, 3}), at::zeros({2, 4, 1, 2})};
  const auto candidates = s3fd_candidates({level0, level1}, reg, 0.05);
  ASSERT_EQ(candidates.size(), 2u);
  ASSERT_EQ(candidates[0].size(0), 3);
  // frame 0: level 0 (0,1) then (1,2), then level 1 (0,1): stride 4 anchors are 16 px, stride 8 are 32 px.
  const std::vector<std::vector<float>> want0{{-2, -6, 14, 10, 0.06f}, {2, -2, 18, 14, 0.9f}, {-4, -12, 28, 20, 0.7f}};
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < 5; ++c) EXPECT_FLOAT_EQ(candidates[0][i][c].item<float>(), want0[i][c]) << i << "," << c;
  ASSERT_EQ(candidates[1].size(0), 1);
  EXPECT_FLOAT_EQ(candidates[1][0][4].item<float>(), 0.3f);
  EXPECT_TRUE(candidates[1].device().is_cpu());
}

TEST(S3fdSelect, NmsThenStrictScoreThreshold) {
  const auto candidates = rows({{0, 0, 9, 9, 0.6f}, {1, 0, 10, 9, 0.8f}, {50, 50, 59, 59, 0.5f}, {80, 80, 89, 89, 0.55f}});
  const auto kept = s3fd_select(candidates, S3fdThresholds{});
  ASSERT_EQ(kept.size(0), 2);
  EXPECT_FLOAT_EQ(kept[0][4].item<float>(), 0.8f);
  EXPECT_FLOAT_EQ(kept[1][4].item<float>(), 0.55f);
}

TEST(RetinaFacePriors, MatchAnIndependentLoop) {
  const int64_t height = 37, width = 50;  // not multiples of the steps: ceil'd feature maps
  const auto priors = retinaface_priors(height, width, at::TensorOptions());
  std::vector<float> want;
  for (const auto& level : retinaface_prior_levels()) {
    const int64_t fh = static_cast<int64_t>(std::ceil(double(height) / level.step));
    const int64_t fw = static_cast<int64_t>(std::ceil(double(width) / level.step));
    for (int64_t i = 0; i < fh; ++i)
      for (int64_t j = 0; j < fw; ++j)
        for (int64_t size : level.min_sizes) {
          want.push_back(static_cast<float>((j + 0.5) * level.step / width));
          want.push_back(static_cast<float>((i + 0.5) * level.step / height));
          want.push_back(static_cast<float>(double(size) / width));
          want.push_back(static_cast<float>(double(size) / height));
        }
  }
  ASSERT_EQ(priors.numel(), static_cast<int64_t>(want.size()));
  const auto flat = priors.contiguous();
  for (size_t k = 0; k < want.size(); ++k) ASSERT_EQ(flat.data_ptr<float>()[k], want[k]) << "value " << k;
}

TEST(RetinaFaceSelect, ConfidenceTopKNmsKeepTopK) {
  // Four separate boxes and one duplicate of the best; landmarks travel with their box.
  const auto boxes = rows({{0, 0, 9, 9}, {20, 0, 29, 9}, {40, 0, 49, 9}, {60, 0, 69, 9}, {0, 0, 9, 9}});
  const auto scores = at::tensor({0.9f, 0.02f, 0.5f, 0.7f, 0.8f});
  auto landmarks = at::arange(5, at::kFloat).unsqueeze(1).expand({5, 10}).contiguous();
  RetinaFaceThresholds thresholds;
  auto out = retinaface_select(boxes, scores, landmarks, thresholds);
  ASSERT_EQ(out.size(0), 3);  // 0.02 is not > 0.02; the duplicate is suppressed
  EXPECT_FLOAT_EQ(out[0][4].item<float>(), 0.9f);
  EXPECT_FLOAT_EQ(out[0][14].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(out[1][4].item<float>(), 0.7f);
  EXPECT_FLOAT_EQ(out[1][5].item<float>(), 3.0f);
  thresholds.top_k = 2;  // the best two before NMS: 0.9 and its duplicate 0.8
  EXPECT_EQ(retinaface_select(boxes, scores, landmarks, thresholds).size(0), 1);
  thresholds.top_k = 5000;
  thresholds.keep_top_k = 2;
  EXPECT_EQ(retinaface_select(boxes, scores, landmarks, thresholds).size(0), 2);
}

TEST(DetectorChecks, FramesMustBeUint8Nhwc3) {
  expect_error(ErrorCode::invalid_argument, "uint8", [] { check_frames(at::zeros({1, 32, 32, 3}), "s3fd", 16); });
  expect_error(ErrorCode::invalid_argument, "[1,3,32,32]",
               [] { check_frames(at::zeros({1, 3, 32, 32}, at::kByte), "s3fd", 16); });
  expect_error(ErrorCode::invalid_argument, "smaller than 16",
               [] { check_frames(at::zeros({1, 8, 32, 3}, at::kByte), "retinaface", 16); });
  EXPECT_NO_THROW(check_frames(at::zeros({0, 8, 8, 3}, at::kByte), "s3fd", 16));
}

TEST(DetectorChecks, HalfPrecisionNeedsCuda) {
  expect_error(ErrorCode::invalid_argument, "CUDA", [] { check_placement(Placement{c10::kCPU, c10::kHalf}, "s3fd"); });
  expect_error(ErrorCode::invalid_argument, "CUDA",
               [] { check_placement(Placement{c10::kCPU, c10::kBFloat16}, "retinaface"); });
  expect_error(ErrorCode::invalid_argument, "unsupported precision",
               [] { check_placement(Placement{c10::kCPU, c10::kDouble}, "s3fd"); });
}

TEST(DetectorWeights, WrongOrMissingKeysNameTheSourceAndKey) {
  StateDict missing = retinaface_layout();
  missing.erase(missing.begin());
  expect_error(ErrorCode::invalid_input, "body.stage1.0.0.weight",
               [&] { RetinaFaceDetector(missing, Placement{}, "wrong.pth"); });
  expect_error(ErrorCode::invalid_input, "wrong.pth", [&] { RetinaFaceDetector(missing, Placement{}, "wrong.pth"); });
  // A RetinaFace checkpoint given to S3FD.
  expect_error(ErrorCode::invalid_input, "s3fd (retinaface.pth)",
               [] { S3fdDetector(retinaface_layout(), Placement{}, "retinaface.pth"); });
}

TEST(DetectorWeights, ShapeMismatchIsNamed) {
  StateDict layout = s3fd_layout();
  layout[0].second = at::zeros({64, 3, 5, 5});
  expect_error(ErrorCode::invalid_input, "conv1_1.weight: expected [64,3,3,3], got [64,3,5,5]",
               [&] { S3fdDetector(layout, Placement{}, "bad.pth"); });
}

TEST(DetectorWeights, EmptyBatchGivesNoDetections) {
  const RetinaFaceDetector detector(retinaface_layout(), Placement{}, "zeros");
  EXPECT_TRUE(detector.detect(at::zeros({0, 64, 64, 3}, at::kByte)).empty());
  EXPECT_EQ(detector.kind(), "retinaface");
  expect_error(ErrorCode::invalid_argument, "retinaface: frames must be uint8",
               [&] { detector.detect(at::zeros({1, 64, 64, 3})); });
}

}  // namespace
}  // namespace heygem::models::detection
