// GFPGAN v1.4 (clean arch, hash-init weights) and facexlib's alignment / paste-back against the
// reference run stored in shared/fixtures/gfpgan. Tolerances: shared/fixtures/README.md, gfpgan/
// "How to compare". Seeds, gains, landmarks, matrices, sizes and the ROI come from the manifest.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <regex>
#include <string>

#include "common/errors.hpp"
#include "daemon/models/face_align.hpp"
#include "daemon/models/face_align_device.hpp"
#include "daemon/models/gfpgan.hpp"
#include "daemon/models/retinaface.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"
#include "tests/support/png_bgr.hpp"

namespace heygem::models {
namespace {

namespace fa = face_align;

const std::string kFolder = "gfpgan";

constexpr double kOutputMaxAbs = 1e-4;             // output.f32, CPU float32
constexpr double kIntermediateRelative = 5e-5;     // each intermediate, relative to its max |ref|
constexpr double kRestoredMaxFraction = 0.001;     // restored_face from our output: <= 1 level on <= 0.1 %
constexpr double kAffineRelative = 1e-6;           // affine_matrix: max abs <= 1e-6 * max(1, |ref|)
constexpr double kInverseRelative = 1e-9;          // inverse_affine
constexpr double kSoftMaskMaxAbs = 1e-5;           // soft_mask_roi with the fixed-point mask warp
constexpr double kFinalMaxFraction = 0.15;         // final_frame: <= 1 level on <= 15 % of values
constexpr double kFinalOwnOutputExtra = 0.0001;    // ... plus the restored-face spread (0.01 %)

nlohmann::json meta() { return test::manifest(kFolder).at("meta"); }

at::Tensor f32(const std::string& file) {
  auto raw = test::load_raw(kFolder, file);
  return at::from_blob(raw.f32.data(), raw.shape, at::kFloat).clone();
}

test::RawTensor u8(const std::string& file) { return test::load_raw(kFolder, file); }

fa::ImageU8 png(const std::string& file) {
  const test::BgrImage image = test::read_png_bgr(test::fixtures_root() / kFolder / file);
  return fa::ImageU8{static_cast<int>(image.width), static_cast<int>(image.height), 3, image.pixels};
}

fa::Affine affine_of(const nlohmann::json& rows) {
  fa::Affine m{};
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) m[r * 3 + c] = rows.at(r).at(c).get<double>();
  return m;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return INFINITY;
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

struct LevelDiff {
  int max_level = 0;
  std::size_t differing = 0, total = 0;
  double fraction() const { return total ? static_cast<double>(differing) / static_cast<double>(total) : 0; }
};

LevelDiff level_diff(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  LevelDiff d;
  d.total = n;
  for (std::size_t i = 0; i < n; ++i) {
    const int delta = std::abs(int{a[i]} - int{b[i]});
    if (delta) ++d.differing;
    d.max_level = std::max(d.max_level, delta);
  }
  return d;
}

std::vector<std::string> manifest_files() {
  std::vector<std::string> files;
  const nlohmann::json manifest = test::manifest(kFolder);  // the loop must not outlive it
  for (const auto& entry : manifest.at("files")) files.push_back(entry.at("file").get<std::string>());
  return files;
}

const GfpganRestorer& cpu_restorer() {
  static const auto restorer = GfpganRestorer::untrained(Placement{}, test::hash_init_spec(kFolder));
  return *restorer;
}

struct ForwardResult {
  GfpganTrace trace;
  at::Tensor output;
};

const ForwardResult& cpu_forward() {
  static const ForwardResult result = [] {
    ForwardResult r;
    r.trace = cpu_restorer().trace(f32("input.f32"), &r.output);
    return r;
  }();
  return result;
}

// ---- network ----------------------------------------------------------------------------------

TEST(GfpganParity, LayoutMatchesReferenceKeysInOrder) {
  std::ifstream in(test::fixtures_root() / kFolder / "keys.json");
  const auto entries = nlohmann::json::parse(in).at("entries");
  const StateDict layout = gfpgan_layout();
  ASSERT_EQ(layout.size(), entries.size());
  for (std::size_t k = 0; k < layout.size(); ++k) {
    EXPECT_EQ(layout[k].first, entries[k].at("name").get<std::string>()) << "entry " << k;
    EXPECT_EQ(layout[k].second.sizes().vec(), entries[k].at("shape").get<std::vector<int64_t>>()) << layout[k].first;
  }
}

TEST(GfpganParity, InputFromCroppedFaceIsExact) {
  const auto crop = u8("cropped_face.u8");
  const at::Tensor crops = at::from_blob(const_cast<std::uint8_t*>(crop.u8.data()), crop.shape, at::kByte).unsqueeze(0);
  const at::Tensor input = cpu_restorer().preprocess(crops);
  EXPECT_EQ(max_abs_diff(input, f32("input.f32")), 0.0);
}

TEST(GfpganParity, CpuFloat32ForwardAndIntermediates) {
  const ForwardResult& r = cpu_forward();
  const double output_error = max_abs_diff(r.output, f32("output.f32"));
  std::cout << "[gfpgan cpu float32] output max abs diff " << output_error << " (tolerance " << kOutputMaxAbs << ")\n";
  EXPECT_LE(output_error, kOutputMaxAbs);

  // Intermediates named by the manifest: the file name says which stage and which resolution.
  const std::regex rgb_skip(R"(rgb_skip_(\d+)\.f32)"), sft(R"(sft_(scale|shift)_(\d+)\.f32)"),
      style_convs(R"(dec_style_convs(\d+)_(\d+)\.f32)"), style_conv1(R"(dec_style_conv1_(\d+)\.f32)");
  int compared = 0;
  double worst = 0;
  for (const std::string& file : manifest_files()) {
    std::smatch m;
    at::Tensor actual;
    if (file == "enc_feat.f32") actual = r.trace.enc_feat;
    else if (file == "latent.f32") actual = r.trace.latent;
    else if (std::regex_match(file, m, rgb_skip))
      actual = r.trace.rgb_skips.at(static_cast<std::size_t>(std::log2(std::stoi(m[1])) - 2));
    else if (std::regex_match(file, m, sft)) {
      const auto level = static_cast<std::size_t>(std::log2(std::stoi(m[2])) - 3);
      actual = m[1] == "scale" ? r.trace.sft_scale.at(level) : r.trace.sft_shift.at(level);
    } else if (std::regex_match(file, m, style_convs)) actual = r.trace.style_convs.at(std::stoul(m[1]));
    else if (std::regex_match(file, m, style_conv1)) actual = r.trace.style_conv1;
    else continue;
    const at::Tensor expected = f32(file);
    ASSERT_EQ(actual.sizes(), expected.sizes()) << file;
    const double relative = max_abs_diff(actual, expected) / expected.abs().max().item<double>();
    EXPECT_LE(relative, kIntermediateRelative) << file;
    worst = std::max(worst, relative);
    ++compared;
  }
  std::cout << "[gfpgan cpu float32] " << compared << " intermediates, worst max abs diff / max |ref| " << worst
            << " (tolerance " << kIntermediateRelative << ")\n";
  EXPECT_GE(compared, 10);
  // The last RGB skip is the output.
  EXPECT_EQ(max_abs_diff(r.trace.rgb_skips.back(), r.output), 0.0);
  // Deterministic: the registered noise buffers, not fresh noise.
  EXPECT_TRUE(at::equal(cpu_restorer().restore(f32("input.f32")), r.output));
}

TEST(GfpganParity, RestoredFaceFromStoredOutputIsExact) {
  const auto expected = u8("restored_face.u8");
  const at::Tensor restored = gfpgan_to_bgr_u8(f32("output.f32"));
  ASSERT_EQ(restored.numel(), static_cast<int64_t>(expected.u8.size()));
  const LevelDiff d = level_diff(restored.data_ptr<std::uint8_t>(), expected.u8.data(), expected.u8.size());
  EXPECT_EQ(d.differing, 0u);
}

TEST(GfpganParity, RestoredFaceFromOwnOutput) {
  const auto expected = u8("restored_face.u8");
  const at::Tensor restored = gfpgan_to_bgr_u8(cpu_forward().output);
  const LevelDiff d = level_diff(restored.data_ptr<std::uint8_t>(), expected.u8.data(), expected.u8.size());
  std::cout << "[gfpgan cpu float32] restored face: " << d.differing << " values differ (" << d.fraction() * 100
            << " %), max " << d.max_level << " level(s)\n";
  EXPECT_LE(d.max_level, 1);
  EXPECT_LE(d.fraction(), kRestoredMaxFraction);
}

// Half precision on CUDA against the float32 reference (the fixture measures float32 only). The
// bounds are this test's statement of what float16 / bfloat16 may cost: float16 keeps 11 significant
// bits, bfloat16 8, and the error grows through the 7 encoder and 14 decoder stages to ~2^-7 and
// ~2^-4 of the [-1, 1] output at worst; on the uint8 face that is at most a few levels on a small
// share of the values.
struct HalfBound {
  const char* precision;
  double output_max_abs;    // network output, values in [-1, 1]
  double output_mean_abs;
  int face_level_bound;     // restored uint8 face: values more than this many levels off ...
  double face_beyond_share; // ... are at most this share of all values
};
constexpr HalfBound kHalfBounds[] = {{"float16", 0.02, 0.002, 2, 0.01}, {"bfloat16", 0.1, 0.015, 8, 0.01}};

TEST(GfpganParity, CudaFloat32AndHalfPrecisionError) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const at::Tensor input = f32("input.f32");
  const at::Tensor reference = f32("output.f32");
  const at::Tensor reference_face = gfpgan_to_bgr_u8(reference).contiguous();
  const auto fp32 = GfpganRestorer::untrained(parse_placement("cuda", "float32"), test::hash_init_spec(kFolder));
  const double error = max_abs_diff(fp32->restore(input), reference);
  std::cout << "[gfpgan cuda float32] output max abs diff " << error << "\n";
  EXPECT_LE(error, kOutputMaxAbs);
  for (const HalfBound& bound : kHalfBounds) {
    const auto half = GfpganRestorer::untrained(parse_placement("cuda", bound.precision), test::hash_init_spec(kFolder));
    const at::Tensor output = half->restore(input).cpu().to(at::kFloat);
    const double max_abs = max_abs_diff(output, reference);
    const double mean_abs = (output.to(at::kDouble) - reference.to(at::kDouble)).abs().mean().item<double>();
    const at::Tensor face = gfpgan_to_bgr_u8(output).contiguous();
    const at::Tensor levels = (face.to(at::kInt) - reference_face.to(at::kInt)).abs();
    const int max_level = levels.max().item<int>();
    const double beyond = levels.gt(bound.face_level_bound).to(at::kDouble).mean().item<double>();
    std::cout << "[gfpgan cuda " << bound.precision << "] output vs float32 reference: max abs " << max_abs
              << ", mean abs " << mean_abs << "; restored face: max " << max_level << " levels, "
              << beyond * 100 << " % of values more than " << bound.face_level_bound << " levels off\n";
    EXPECT_LE(max_abs, bound.output_max_abs) << bound.precision;
    EXPECT_LE(mean_abs, bound.output_mean_abs) << bound.precision;
    EXPECT_LE(beyond, bound.face_beyond_share) << bound.precision;
  }
}

// ---- weights ----------------------------------------------------------------------------------

CheckpointObject checkpoint_of(const StateDict& weights, const std::string& top_key) {
  CheckpointDict dict;
  for (const auto& [name, tensor] : weights) dict.items.emplace_back(name, CheckpointObject(tensor));
  if (top_key.empty()) return CheckpointObject(std::move(dict));
  CheckpointDict top;
  top.items.emplace_back(std::string("params"), CheckpointObject(CheckpointDict{}));
  top.items.emplace_back(top_key, CheckpointObject(std::move(dict)));
  return CheckpointObject(std::move(top));
}

std::string load_error(const StateDict& weights) {
  try {
    GfpganRestorer restorer(weights, Placement{}, "bad.pth");
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(GfpganWeights, ParamsEmaIsSelectedAndBadWeightsNameTheKey) {
  const StateDict weights = hash_init(gfpgan_layout(), test::hash_init_spec(kFolder));
  // params_ema wins over params (which is empty here and would fail).
  const StateDict selected = gfpgan_state_dict_from(checkpoint_of(weights, "params_ema"), "ckpt.pth");
  ASSERT_EQ(selected.size(), weights.size());
  EXPECT_EQ(selected.front().first, weights.front().first);

  const std::string key = "stylegan_decoder.style_convs.3.modulated_conv.weight";
  StateDict missing;
  for (const auto& entry : weights)
    if (entry.first != key) missing.push_back(entry);
  EXPECT_NE(load_error(missing).find("missing key " + key), std::string::npos) << load_error(missing);

  StateDict reshaped = weights;
  for (auto& entry : reshaped)
    if (entry.first == "final_linear.bias") entry.second = at::zeros({10});
  const std::string shape_error = load_error(reshaped);
  EXPECT_NE(shape_error.find("final_linear.bias: expected [8192], got [10]"), std::string::npos) << shape_error;

  StateDict extra = weights;
  extra.emplace_back("module.extra", at::zeros({1}));
  EXPECT_NE(load_error(extra).find("unexpected key module.extra"), std::string::npos) << load_error(extra);

  StateDict half = weights;
  half.front().second = half.front().second.to(at::kHalf);
  EXPECT_NE(load_error(half).find(half.front().first + ": expected float32"), std::string::npos) << load_error(half);

  // Another model's checkpoint.
  const StateDict other{{"conv1.weight", at::zeros({4})}, {"conv1.bias", at::zeros({4})}};
  const std::string wrong_model = load_error(other);
  EXPECT_NE(wrong_model.find("not a GFPGAN v1.4 (clean) checkpoint"), std::string::npos) << wrong_model;
}

// ---- alignment --------------------------------------------------------------------------------

fa::Landmarks5 fixture_landmarks() {
  const at::Tensor t = f32("landmarks_5.f32");
  fa::Landmarks5 l{};
  for (int i = 0; i < 10; ++i) l[i] = t.reshape({-1})[i].item<float>();
  return l;
}

TEST(GfpganAlignParity, TemplateMatchesHelper) {
  const auto stored = meta().at("helper").at("face_template_float64");
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 2; ++j)
      EXPECT_EQ(fa::ffhq_template_512()[2 * i + j], stored.at(i).at(j).get<double>());
}

TEST(GfpganAlignParity, LandmarksFromRetinaFace) {
  // The row the helper takes: score > 0.97 (FaceRestoreHelper's detector threshold).
  const auto image = test::read_png_bgr(test::fixtures_root() / kFolder / "frame.png");
  const at::Tensor frame = at::from_blob(const_cast<std::uint8_t*>(image.pixels.data()),
                                         {1, image.height, image.width, 3}, at::kByte);
  RetinaFaceOptions options;
  options.vis_threshold = 0.97;
  const auto detector =
      RetinaFaceDetector::from_file(test::shared_root() / "models" / "retinaface_mobilenet0.25.pth", Placement{}, options);
  const auto detections = detector->detect(frame);
  ASSERT_EQ(detections.size(), 1u);
  ASSERT_EQ(detections[0].size(), 1u);
  const fa::Landmarks5 expected = fixture_landmarks();
  double worst = 0;
  for (int i = 0; i < 10; ++i) worst = std::max(worst, double(std::abs(detections[0][0].landmarks[i] - expected[i])));
  std::cout << "[gfpgan align] RetinaFace landmarks max abs diff " << worst << " px\n";
  EXPECT_LE(worst, 0.01);
}

TEST(GfpganAlignParity, AffineFromLandmarksIsOpenCvLmeds) {
  const fa::SimilarityFit fit = fa::align_to_template(fixture_landmarks());
  const fa::Affine expected = affine_of(meta().at("affine_matrix"));
  double worst = 0;
  for (int i = 0; i < 6; ++i) {
    const double error = std::abs(fit.matrix[i] - expected[i]) / std::max(1.0, std::abs(expected[i]));
    worst = std::max(worst, error);
  }
  std::cout << "[gfpgan align] affine max relative diff " << worst << " (tolerance " << kAffineRelative << ")\n";
  EXPECT_LE(worst, kAffineRelative);
  const auto inliers = meta().at("alignment").at("lmeds_inliers");
  ASSERT_EQ(fit.inliers.size(), inliers.size());
  for (std::size_t i = 0; i < fit.inliers.size(); ++i) EXPECT_EQ(fit.inliers[i], inliers[i].get<int>() != 0) << i;
  const auto& tol = meta().at("tolerance_measurement");
  if (tol.contains("lmeds_emulation")) {
    const auto draws = tol.at("lmeds_emulation").at("pair_draws");
    ASSERT_EQ(fit.draws.size(), draws.size());
    for (std::size_t i = 0; i < draws.size(); ++i) {
      EXPECT_EQ(fit.draws[i][0], draws[i][0].get<int>());
      EXPECT_EQ(fit.draws[i][1], draws[i][1].get<int>());
    }
    EXPECT_EQ(fit.min_median, tol.at("lmeds_emulation").at("min_median_sq_err").get<float>());
  }
}

TEST(GfpganAlignParity, InverseAffine) {
  const fa::Affine inverse = fa::invert_affine(affine_of(meta().at("affine_matrix")));
  const fa::Affine expected = affine_of(meta().at("inverse_affine"));
  for (int i = 0; i < 6; ++i)
    EXPECT_LE(std::abs(inverse[i] - expected[i]), kInverseRelative * std::max(1.0, std::abs(expected[i]))) << i;
}

TEST(GfpganAlignParity, CroppedFaceIsExact) {
  const fa::ImageU8 crop = fa::warp_face(png("frame.png"), affine_of(meta().at("affine_matrix")));
  const auto expected = u8("cropped_face.u8");
  ASSERT_EQ(crop.pixels.size(), expected.u8.size());
  const LevelDiff d = level_diff(crop.pixels.data(), expected.u8.data(), expected.u8.size());
  EXPECT_EQ(d.differing, 0u) << "max " << d.max_level;
}

// ---- paste-back -------------------------------------------------------------------------------

fa::Rect fixture_roi() {
  const auto r = meta().at("paste").at("roi_x0_y0_x1_y1");
  return fa::Rect{r[0].get<int>(), r[1].get<int>(), r[2].get<int>(), r[3].get<int>()};
}

fa::ImageU8 restored_face() {
  const auto raw = u8("restored_face.u8");
  return fa::ImageU8{static_cast<int>(raw.shape[1]), static_cast<int>(raw.shape[0]), 3, raw.u8};
}

// Value of an area-sized image at frame pixel (x, y); 0 outside the area.
template <class Image>
auto at_frame(const Image& image, fa::Rect area, int x, int y, int c, int channels) {
  using T = typename decltype(image.pixels)::value_type;
  if (x < area.x0 || y < area.y0 || x >= area.x1 || y >= area.y1) return T{0};
  return image.pixels[(static_cast<std::size_t>(y - area.y0) * area.width() + (x - area.x0)) * channels + c];
}

TEST(GfpganPasteParity, WarpedFaceAndMasks) {
  const fa::Affine inverse = affine_of(meta().at("inverse_affine"));
  const fa::ImageU8 frame = png("frame.png");
  const fa::ImageU8 face = restored_face();
  const fa::PasteMasks masks = fa::paste_masks(inverse, face.width, frame.width, frame.height);
  EXPECT_EQ(masks.edge, meta().at("paste").at("w_edge").get<int>());
  EXPECT_NEAR(masks.total_face_area, meta().at("paste").at("total_face_area").get<double>(), 1.0);

  static constexpr std::uint8_t kZero[3] = {0, 0, 0};
  const fa::ImageU8 warped = fa::warp_affine_u8(face, inverse, masks.area, kZero);
  const fa::Rect roi = fixture_roi();
  const auto inv_restored = u8("inv_restored_roi.u8");
  const at::Tensor soft = f32("soft_mask_roi.f32"), erosion = f32("inv_mask_erosion_roi.f32");
  const float* soft_ref = soft.data_ptr<float>();
  const float* erosion_ref = erosion.data_ptr<float>();
  std::size_t warped_diff = 0, erosion_diff = 0;
  double soft_worst = 0;
  for (int y = roi.y0; y < roi.y1; ++y)
    for (int x = roi.x0; x < roi.x1; ++x) {
      const std::size_t i = static_cast<std::size_t>(y - roi.y0) * roi.width() + (x - roi.x0);
      for (int c = 0; c < 3; ++c) warped_diff += at_frame(warped, masks.area, x, y, c, 3) != inv_restored.u8[i * 3 + c];
      erosion_diff += at_frame(masks.erosion, masks.area, x, y, 0, 1) != erosion_ref[i];
      soft_worst = std::max(soft_worst, std::abs(double(at_frame(masks.soft, masks.area, x, y, 0, 1)) - soft_ref[i]));
    }
  // Nothing outside the reference ROI.
  double outside = 0;
  for (int y = masks.area.y0; y < masks.area.y1; ++y)
    for (int x = masks.area.x0; x < masks.area.x1; ++x)
      if (x < roi.x0 || y < roi.y0 || x >= roi.x1 || y >= roi.y1)
        outside = std::max({outside, double(at_frame(masks.soft, masks.area, x, y, 0, 1)),
                            double(at_frame(masks.erosion, masks.area, x, y, 0, 1))});
  std::cout << "[gfpgan paste] soft mask max abs diff " << soft_worst << " (tolerance " << kSoftMaskMaxAbs << ")\n";
  EXPECT_EQ(warped_diff, 0u);
  EXPECT_EQ(erosion_diff, 0u);
  EXPECT_LE(soft_worst, kSoftMaskMaxAbs);
  EXPECT_EQ(outside, 0.0);
}

TEST(GfpganPasteParity, BlendFromStoredMasksIsExact) {
  const fa::Rect roi = fixture_roi();
  fa::ImageU8 frame = png("frame.png");
  const auto inv_restored = u8("inv_restored_roi.u8");
  const at::Tensor soft = f32("soft_mask_roi.f32"), erosion = f32("inv_mask_erosion_roi.f32");
  const fa::ImageU8 warped{roi.width(), roi.height(), 3, inv_restored.u8};
  const fa::ImageF32 soft_image{roi.width(), roi.height(),
                                std::vector<float>(soft.data_ptr<float>(), soft.data_ptr<float>() + soft.numel())};
  const fa::ImageF32 erosion_image{
      roi.width(), roi.height(), std::vector<float>(erosion.data_ptr<float>(), erosion.data_ptr<float>() + erosion.numel())};
  fa::blend(frame, warped, erosion_image, soft_image, roi);
  const fa::ImageU8 expected = png("final_frame.png");
  const LevelDiff d = level_diff(frame.pixels.data(), expected.pixels.data(), expected.pixels.size());
  EXPECT_EQ(d.differing, 0u) << "max " << d.max_level;
}

void expect_final_frame(const fa::ImageU8& face, double max_fraction, const std::string& label) {
  fa::ImageU8 frame = png("frame.png");
  const fa::ImageU8 original = frame;
  fa::paste_face(frame, face, affine_of(meta().at("inverse_affine")));
  const fa::ImageU8 expected = png("final_frame.png");
  ASSERT_EQ(frame.pixels.size(), expected.pixels.size());
  const fa::Rect roi = fixture_roi();
  LevelDiff d;
  std::size_t outside_diff = 0;
  for (int y = 0; y < frame.height; ++y)
    for (int x = 0; x < frame.width; ++x)
      for (int c = 0; c < 3; ++c) {
        const std::size_t i = (static_cast<std::size_t>(y) * frame.width + x) * 3 + c;
        const int delta = std::abs(int{frame.pixels[i]} - int{expected.pixels[i]});
        const bool inside = x >= roi.x0 && y >= roi.y0 && x < roi.x1 && y < roi.y1;
        if (!inside) {
          outside_diff += delta != 0 || frame.pixels[i] != original.pixels[i];
          continue;
        }
        ++d.total;
        d.differing += delta != 0;
        d.max_level = std::max(d.max_level, delta);
      }
  const double fraction = static_cast<double>(d.differing) / static_cast<double>(frame.pixels.size());
  std::cout << "[gfpgan paste " << label << "] final frame: " << d.differing << " values differ (" << fraction * 100
            << " % of the frame), max " << d.max_level << " level(s)\n";
  EXPECT_EQ(outside_diff, 0u);
  EXPECT_LE(d.max_level, 1);
  EXPECT_LE(fraction, max_fraction);
}

TEST(GfpganPasteParity, FinalFrameFromStoredRestoredFace) {
  expect_final_frame(restored_face(), kFinalMaxFraction, "stored restored face");
}

TEST(GfpganPasteParity, FinalFrameFromOwnNetworkOutput) {
  const at::Tensor restored = gfpgan_to_bgr_u8(cpu_forward().output);
  const fa::ImageU8 face{static_cast<int>(restored.size(2)), static_cast<int>(restored.size(1)), 3,
                         std::vector<std::uint8_t>(restored.data_ptr<std::uint8_t>(),
                                                   restored.data_ptr<std::uint8_t>() + restored.numel())};
  expect_final_frame(face, kFinalMaxFraction + kFinalOwnOutputExtra, "own network output");
}


// ---- the same warps, masks and blend as torch ops (GPU placements) ----------------------------

at::Tensor tensor_of(const fa::ImageU8& image, const at::Device& device) {
  return at::from_blob(const_cast<std::uint8_t*>(image.pixels.data()), {image.height, image.width, image.channels},
                       at::kByte)
      .to(device)
      .contiguous();
}

std::vector<at::Device> devices_to_check() {
  std::vector<at::Device> devices{at::Device(at::kCPU)};
  if (torch::cuda::is_available()) devices.emplace_back(at::kCUDA, 0);
  return devices;
}

LevelDiff tensor_diff(const at::Tensor& got, const fa::ImageU8& expected) {
  const at::Tensor cpu = got.cpu().contiguous();
  EXPECT_EQ(static_cast<std::size_t>(cpu.numel()), expected.pixels.size());
  return level_diff(cpu.data_ptr<std::uint8_t>(), expected.pixels.data(), expected.pixels.size());
}

TEST(GfpganDevicePath, CropIsTheOpenCvCrop) {
  const fa::ImageU8 frame = png("frame.png");
  const fa::Affine affine = affine_of(meta().at("affine_matrix"));
  const fa::ImageU8 expected = fa::warp_face(frame, affine);
  for (const auto& device : devices_to_check()) {
    const LevelDiff d = tensor_diff(fa::warp_face_on_device(tensor_of(frame, device), affine), expected);
    std::cout << "[gfpgan device path " << device << "] crop: " << d.differing << " values differ\n";
    EXPECT_EQ(d.differing, 0u) << device << ": max " << d.max_level;
  }
}

// The fixture's face, and the same face moved so that it crosses the frame's top-left corner (the
// erosion ignores what lies outside the frame, the blur reflects at its edges).
TEST(GfpganDevicePath, PasteIsTheOpenCvPaste) {
  const fa::ImageU8 face = restored_face();
  const fa::Affine inverse = affine_of(meta().at("inverse_affine"));
  const fa::ImageU8 frame = png("frame.png");
  fa::Affine at_corner = inverse;
  const fa::Rect reach = fa::paste_reach(inverse, face.width, frame.width, frame.height);
  at_corner[2] -= reach.x0 + reach.width() / 3.0;
  at_corner[5] -= reach.y0 + reach.height() / 3.0;
  for (const auto& [label, affine] : {std::pair{"fixture", inverse}, std::pair{"corner", at_corner}}) {
    fa::ImageU8 expected = frame;
    fa::paste_face(expected, face, affine);
    for (const auto& device : devices_to_check()) {
      at::Tensor got = tensor_of(frame, device);
      fa::paste_face_on_device(got, tensor_of(face, device), affine);
      const LevelDiff d = tensor_diff(got, expected);
      std::cout << "[gfpgan device path " << device << "] paste (" << label << "): " << d.differing
                << " values differ, max " << d.max_level << " level(s)\n";
      EXPECT_EQ(d.differing, 0u) << device << " " << label << ": max " << d.max_level;
    }
  }
}

}  // namespace
}  // namespace heygem::models
