// RetinaFace mobilenet0.25 with the real weights against biubug6's detect.py (fixtures/retinaface):
// raw outputs, priors and decoding of frame 0, post-processing from the STORED outputs, and the whole
// detector on the three frames (full lists with the confidence threshold, drawn lists with vis_thres).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "daemon/models/retinaface.hpp"
#include "daemon/models/retinaface_net.hpp"
#include "tests/support/device.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/png_bgr.hpp"

namespace heygem::models {
namespace {

const char* const kFolder = "retinaface";

std::filesystem::path weights_file() { return test::shared_root() / "models" / "retinaface_mobilenet0.25.pth"; }

at::Tensor fixture_tensor(const std::string& file) {
  auto raw = test::load_raw(kFolder, file);
  return at::from_blob(raw.f32.data(), raw.shape, at::kFloat).clone();
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  if (a.numel() == 0) return 0;
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

nlohmann::json meta() { return test::manifest(kFolder).at("meta"); }

RetinaFaceOptions fixture_options(double vis_threshold) {
  const auto t = meta().at("thresholds");
  RetinaFaceOptions options;
  options.thresholds.confidence = t.at("confidence_threshold").get<double>();
  options.thresholds.top_k = t.at("top_k").get<int64_t>();
  options.thresholds.nms = t.at("nms_threshold").get<float>();
  options.thresholds.keep_top_k = t.at("keep_top_k").get<int64_t>();
  options.vis_threshold = vis_threshold;
  return options;
}

// Full detection lists: vis threshold = the confidence threshold (no further filtering).
const RetinaFaceDetector& full_list_detector() {
  static const auto detector = RetinaFaceDetector::from_file(
      weights_file(), Placement{}, fixture_options(meta().at("thresholds").at("confidence_threshold").get<double>()));
  return *detector;
}

// The same on the device the parity run targets (HEYGEM_TEST_DEVICE; CPU by default).
const RetinaFaceDetector& device_detector() {
  static const auto detector = RetinaFaceDetector::from_file(
      weights_file(), test::test_placement(),
      fixture_options(meta().at("thresholds").at("confidence_threshold").get<double>()));
  return *detector;
}

std::string frame_file(size_t index) {
  const auto manifest = test::manifest(kFolder);
  const std::string prefix = "frames/frame" + std::to_string(index) + "_";
  for (const auto& entry : manifest.at("files")) {
    const auto name = entry.at("file").get<std::string>();
    if (name.rfind(prefix, 0) == 0) return name;
  }
  throw std::runtime_error("retinaface manifest lists no " + prefix + "*");
}

at::Tensor frame_tensor(size_t index) {
  const auto image = test::read_png_bgr(test::fixtures_root() / kFolder / frame_file(index));
  return at::from_blob(const_cast<uint8_t*>(image.pixels.data()), {1, image.height, image.width, 3}, at::kByte)
      .clone();
}

// Rows (x1, y1, x2, y2, score, 10 landmark coordinates) within the README's tolerances.
void expect_detections(const at::Tensor& got, const at::Tensor& want, double pixels, double score) {
  ASSERT_EQ(got.size(0), want.size(0));
  if (got.size(0) == 0) return;
  const auto coordinates = at::cat({at::arange(4), at::arange(5, 15)}).to(at::kLong);
  EXPECT_LE(max_abs_diff(got.index_select(1, coordinates), want.index_select(1, coordinates)), pixels);
  EXPECT_LE(max_abs_diff(got.select(1, 4), want.select(1, 4)), score);
}

at::Tensor as_rows(const FrameDetections& detections) {
  auto rows = at::empty({static_cast<int64_t>(detections.size()), 15}, at::kFloat);
  for (size_t i = 0; i < detections.size(); ++i) {
    const auto& d = detections[i];
    EXPECT_TRUE(d.has_landmarks);
    const float head[5] = {d.x1, d.y1, d.x2, d.y2, d.score};
    for (int64_t c = 0; c < 5; ++c) rows[static_cast<int64_t>(i)][c] = head[c];
    for (int64_t c = 0; c < 10; ++c) rows[static_cast<int64_t>(i)][5 + c] = d.landmarks[static_cast<size_t>(c)];
  }
  return rows;
}

TEST(RetinaFaceParity, LayoutMatchesShippedCheckpoint) {
  std::ifstream in(test::fixtures_root() / kFolder / "keys.json");
  const auto keys = nlohmann::json::parse(in);
  const auto layout = retinaface_layout();
  ASSERT_EQ(static_cast<int64_t>(layout.size()), keys.at("count").get<int64_t>());
  for (size_t k = 0; k < layout.size(); ++k) {
    const auto& entry = keys.at("entries")[k];
    EXPECT_EQ(layout[k].first, entry.at("name").get<std::string>()) << "entry " << k;
    EXPECT_EQ(layout[k].second.sizes().vec(), entry.at("shape").get<std::vector<int64_t>>()) << layout[k].first;
  }
}

TEST(RetinaFaceParity, PreprocessingMatchesReferenceInput) {
  const auto input = device_detector().preprocess(frame_tensor(0));
  EXPECT_EQ(max_abs_diff(input, fixture_tensor("input_0.f32")), 0.0);
}

TEST(RetinaFaceParity, RawOutputsMatchReference) {
  const auto& detector = device_detector();
  const auto raw = detector.forward(fixture_tensor("input_0.f32").to(detector.placement().device));
  EXPECT_LE(max_abs_diff(raw.loc, fixture_tensor("loc_0.f32")), 1e-4);
  EXPECT_LE(max_abs_diff(raw.conf, fixture_tensor("conf_0.f32")), 1e-4);
  EXPECT_LE(max_abs_diff(raw.landmarks, fixture_tensor("landms_0.f32")), 1e-4);
}

RetinaFaceOutputs stored_outputs() {
  return {fixture_tensor("loc_0.f32"), fixture_tensor("conf_0.f32"), fixture_tensor("landms_0.f32")};
}

TEST(RetinaFaceParity, PriorsAndDecodingOfStoredOutputs) {
  const auto input = fixture_tensor("input_0.f32");
  const int64_t height = input.size(2), width = input.size(3);
  const auto decoded = full_list_detector().decode(stored_outputs(), height, width);
  EXPECT_EQ(max_abs_diff(decoded.priors, fixture_tensor("priors_0.f32")), 0.0);
  // Pixel coordinates up to a few hundred: a few float32 ulps allowed for exp().
  EXPECT_LE(max_abs_diff(decoded.boxes[0], fixture_tensor("boxes_decoded_0.f32")), 1e-3);
  EXPECT_LE(max_abs_diff(decoded.landmarks[0], fixture_tensor("landms_decoded_0.f32")), 1e-3);
}

TEST(RetinaFaceParity, DetectionsFromStoredOutputs) {
  const auto input = fixture_tensor("input_0.f32");
  const auto rows = full_list_detector().postprocess(stored_outputs(), input.size(2), input.size(3));
  ASSERT_EQ(rows.size(), 1u);
  expect_detections(rows[0], fixture_tensor("dets_0.f32"), 1e-3, 1e-6);
}

TEST(RetinaFaceParity, DetectorOnAllFramesFullAndDrawnLists) {
  const auto frames_meta = meta().at("frames");
  std::vector<at::Tensor> frames;
  for (size_t i = 0; i < frames_meta.size(); ++i) frames.push_back(frame_tensor(i));
  const auto batch = at::cat(frames, 0);

  const auto full = device_detector().detect(batch);
  const auto drawn = RetinaFaceDetector::from_file(weights_file(), test::test_placement(),
                                                   fixture_options(meta().at("thresholds").at("vis_thres").get<double>()))
                         ->detect(batch);
  ASSERT_EQ(full.size(), frames.size());
  ASSERT_EQ(drawn.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    expect_detections(as_rows(full[i]), fixture_tensor("dets_" + std::to_string(i) + ".f32"), 0.01, 1e-5);
    expect_detections(as_rows(drawn[i]), fixture_tensor("dets_vis_" + std::to_string(i) + ".f32"), 0.01, 1e-5);
  }
}

TEST(RetinaFaceParity, DefaultVisThresholdIsTheScripts) {
  EXPECT_DOUBLE_EQ(RetinaFaceOptions{}.vis_threshold, meta().at("thresholds").at("vis_thres").get<double>());
}

}  // namespace
}  // namespace heygem::models
