#include "daemon/models/detection_post.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <string>

#include "common/errors.hpp"
#include "daemon/models/placement.hpp"

namespace heygem::models::detection {
namespace {

[[noreturn]] void bad_argument(const std::string& what) {
  throw Error(ErrorCode::invalid_argument, "detection post-processing: " + what);
}

void expect_float_rows(const at::Tensor& rows, int64_t min_columns, const char* name) {
  if (rows.dim() != 2 || rows.size(1) < min_columns)
    bad_argument(std::string(name) + " must be [K, >=" + std::to_string(min_columns) + "], got " +
                 std::to_string(rows.dim()) + " dims");
  if (rows.scalar_type() != at::kFloat || !rows.device().is_cpu())
    bad_argument(std::string(name) + " must be a CPU float32 tensor");
}

// The rows of `table` at `indices`, in that order.
at::Tensor gather_rows(const at::Tensor& table, const std::vector<int64_t>& indices) {
  auto index = at::empty({static_cast<int64_t>(indices.size())}, at::kLong);
  std::copy(indices.begin(), indices.end(), index.data_ptr<int64_t>());
  return table.index_select(0, index);
}

// The rows of `table` [K, C] whose entry in `mask` [K] is true, in order.
at::Tensor masked_rows(const at::Tensor& table, const at::Tensor& mask) {
  return table.index_select(0, mask.nonzero().squeeze(1));
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string text = "[";
  for (size_t i = 0; i < sizes.size(); ++i) text += (i ? "," : "") + std::to_string(sizes[i]);
  return text + "]";
}

}  // namespace

void check_frames(const at::Tensor& frames, std::string_view model, int64_t min_side) {
  const std::string name(model);
  if (!frames.defined()) throw Error(ErrorCode::invalid_argument, name + ": no frames given");
  if (frames.scalar_type() != at::kByte)
    throw Error(ErrorCode::invalid_argument,
                name + ": frames must be uint8 BGR, got " + std::string(c10::toString(frames.scalar_type())));
  if (frames.dim() != 4 || frames.size(3) != 3)
    throw Error(ErrorCode::invalid_argument, name + ": frames must be [N, H, W, 3], got " + shape_text(frames.sizes()));
  if (frames.size(0) > 0 && (frames.size(1) < min_side || frames.size(2) < min_side))
    throw Error(ErrorCode::invalid_argument, name + ": frames of " + std::to_string(frames.size(2)) + "x" +
                                                 std::to_string(frames.size(1)) + " are smaller than " +
                                                 std::to_string(min_side) + " pixels per side");
}

void check_placement(const Placement& placement, std::string_view model) {
  const auto dtype = placement.dtype;
  if (dtype != at::kFloat && dtype != at::kHalf && dtype != at::kBFloat16)
    throw Error(ErrorCode::invalid_argument,
                std::string(model) + ": unsupported precision " + std::string(c10::toString(dtype)));
  if (dtype != at::kFloat && !placement.device.is_cuda())
    throw Error(ErrorCode::invalid_argument, std::string(model) + ": " + std::string(c10::toString(dtype)) +
                                                 " needs a CUDA device, got " + placement.device.str());
  models::check_placement(placement);  // the device exists; CUDA float32 without TF32
}

at::Tensor decode_boxes(const at::Tensor& loc, const at::Tensor& priors, Variances variances) {
  const auto prior_centre = priors.narrow(-1, 0, 2);
  const auto prior_size = priors.narrow(-1, 2, 2);
  const auto centre = prior_centre + loc.narrow(-1, 0, 2) * variances.center * prior_size;
  const auto size = prior_size * at::exp(loc.narrow(-1, 2, 2) * variances.size);
  const auto top_left = centre - size / 2;
  const auto bottom_right = size + top_left;
  return at::cat({top_left, bottom_right}, -1);
}

at::Tensor decode_landmarks(const at::Tensor& pre, const at::Tensor& priors, Variances variances) {
  const auto prior_centre = priors.narrow(-1, 0, 2);
  const auto prior_size = priors.narrow(-1, 2, 2);
  std::vector<at::Tensor> points;
  for (int64_t k = 0; k < 5; ++k)
    points.push_back(prior_centre + pre.narrow(-1, 2 * k, 2) * variances.center * prior_size);
  return at::cat(points, -1);
}

at::Tensor s3fd_level_anchors(int64_t level, int64_t height, int64_t width, const at::TensorOptions& options) {
  const double stride = static_cast<double>(int64_t{1} << (level + 2));
  const auto float_options = options.dtype(at::kFloat);
  // Integers and halves: exact in float32, as the reference's Python arithmetic gives them.
  const auto cx = at::arange(width, float_options) * stride + stride / 2;
  const auto cy = at::arange(height, float_options) * stride + stride / 2;
  const auto size = at::full({height, width}, 4 * stride, float_options);
  return at::stack({cx.view({1, width}).expand({height, width}), cy.view({height, 1}).expand({height, width}), size,
                    size},
                   -1)
      .reshape({height * width, 4});
}

std::vector<at::Tensor> s3fd_candidates(const std::vector<at::Tensor>& face_prob, const std::vector<at::Tensor>& reg,
                                        double threshold) {
  if (face_prob.empty() || face_prob.size() != reg.size())
    bad_argument("s3fd_candidates needs one regression tensor per level");
  const int64_t frames = face_prob.front().size(0);
  std::vector<at::Tensor> rows_per_level;
  for (size_t level = 0; level < face_prob.size(); ++level) {
    const auto& prob = face_prob[level];
    const auto& offsets = reg[level];
    if (prob.dim() != 3 || offsets.dim() != 4 || offsets.size(1) != 4 || prob.size(0) != frames ||
        offsets.size(0) != frames || prob.size(1) != offsets.size(2) || prob.size(2) != offsets.size(3))
      bad_argument("s3fd level " + std::to_string(level + 1) + ": face_prob [N,H,W] and reg [N,4,H,W] disagree");
    const int64_t h = prob.size(1), w = prob.size(2);
    const auto anchors = s3fd_level_anchors(static_cast<int64_t>(level), h, w, prob.options());
    const auto loc = offsets.permute({0, 2, 3, 1}).reshape({frames, h * w, 4});
    const auto boxes = decode_boxes(loc, anchors.unsqueeze(0));
    rows_per_level.push_back(at::cat({boxes, prob.reshape({frames, h * w, 1})}, -1));
  }
  const auto rows = at::cat(rows_per_level, 1);  // [N, A, 5], level by level, row-major
  const auto passes = rows.select(-1, 4) > threshold;
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(frames));
  for (int64_t n = 0; n < frames; ++n)
    out.push_back(masked_rows(rows[n], passes[n]).to(at::kCPU).contiguous());
  return out;
}

at::Tensor s3fd_select(const at::Tensor& candidates, const S3fdThresholds& thresholds) {
  expect_float_rows(candidates, 5, "s3fd candidates");
  // The reference runs NMS on every candidate and drops scores <= thresholds.score afterwards. Such a
  // box is visited after every box above the threshold, so it can only suppress boxes that are
  // dropped anyway: filtering first gives the same rows, and NMS sees far fewer boxes.
  const auto scores = candidates.select(1, 4).contiguous();
  const float* score = scores.data_ptr<float>();
  std::vector<int64_t> confident;
  for (int64_t i = 0; i < scores.numel(); ++i)
    if (static_cast<double>(score[i]) > thresholds.score) confident.push_back(i);
  const auto rows = gather_rows(candidates, confident);
  return gather_rows(rows, greedy_nms(rows, stable_descending_order(rows.select(1, 4)), thresholds.nms));
}

const std::vector<PriorLevel>& retinaface_prior_levels() {
  static const std::vector<PriorLevel> levels{{8, {10, 20}}, {16, {32, 64}}, {32, {128, 256}}};
  return levels;
}

at::Tensor retinaface_priors(int64_t height, int64_t width, const at::TensorOptions& options) {
  if (height <= 0 || width <= 0) bad_argument("retinaface priors need a positive image size");
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const double h = static_cast<double>(height), w = static_cast<double>(width);
  std::vector<at::Tensor> levels;
  for (const auto& level : retinaface_prior_levels()) {
    const int64_t rows = (height + level.step - 1) / level.step;
    const int64_t cols = (width + level.step - 1) / level.step;
    const double step = static_cast<double>(level.step);
    // (x + 0.5) * step / size, in this operation order, as prior_box.py computes it in float64.
    const auto cx = ((at::arange(cols, f64) + 0.5) * step / w).view({1, cols, 1}).expand({rows, cols, 2});
    const auto cy = ((at::arange(rows, f64) + 0.5) * step / h).view({rows, 1, 1}).expand({rows, cols, 2});
    const auto min_sizes = at::tensor({static_cast<double>(level.min_sizes[0]), static_cast<double>(level.min_sizes[1])}, f64);
    const auto sx = (min_sizes / w).view({1, 1, 2}).expand({rows, cols, 2});
    const auto sy = (min_sizes / h).view({1, 1, 2}).expand({rows, cols, 2});
    levels.push_back(at::stack({cx, cy, sx, sy}, -1).reshape({rows * cols * 2, 4}));
  }
  return at::cat(levels, 0).to(at::kFloat).to(options.dtype(at::kFloat));
}

at::Tensor retinaface_select(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& landmarks,
                             const RetinaFaceThresholds& thresholds) {
  if (boxes.dim() != 2 || boxes.size(1) != 4 || scores.dim() != 1 || landmarks.dim() != 2 ||
      landmarks.size(1) != 10 || scores.size(0) != boxes.size(0) || landmarks.size(0) != boxes.size(0))
    bad_argument("retinaface_select needs boxes [A,4], scores [A] and landmarks [A,10]");
  const auto passes = scores > thresholds.confidence;
  const auto rows =
      masked_rows(at::cat({boxes, scores.unsqueeze(1), landmarks}, 1), passes).to(at::kCPU, at::kFloat).contiguous();
  auto order = stable_descending_order(rows.select(1, 4));
  if (static_cast<int64_t>(order.size()) > thresholds.top_k) order.resize(static_cast<size_t>(thresholds.top_k));
  auto kept = greedy_nms(rows, order, thresholds.nms);
  if (static_cast<int64_t>(kept.size()) > thresholds.keep_top_k) kept.resize(static_cast<size_t>(thresholds.keep_top_k));
  return gather_rows(rows, kept);
}

std::vector<int64_t> stable_descending_order(const at::Tensor& scores) {
  if (scores.dim() != 1 || scores.scalar_type() != at::kFloat || !scores.device().is_cpu())
    bad_argument("scores must be a CPU float32 vector");
  const auto values = scores.contiguous();
  const float* score = values.data_ptr<float>();
  std::vector<int64_t> order(static_cast<size_t>(values.numel()));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [score](int64_t a, int64_t b) { return score[a] > score[b]; });
  return order;
}

std::vector<int64_t> greedy_nms(const at::Tensor& boxes, const std::vector<int64_t>& order, float iou_threshold) {
  expect_float_rows(boxes, 4, "nms boxes");
  const auto corners = boxes.narrow(1, 0, 4).contiguous();
  const auto box = corners.accessor<float, 2>();
  const int64_t count = corners.size(0);
  std::vector<float> area(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    area[i] = (box[i][2] - box[i][0] + 1.0f) * (box[i][3] - box[i][1] + 1.0f);

  for (int64_t index : order)
    if (index < 0 || index >= count) bad_argument("nms order index " + std::to_string(index) + " out of range");

  std::vector<char> suppressed(static_cast<size_t>(count), 0);
  std::vector<int64_t> kept;
  for (size_t position = 0; position < order.size(); ++position) {
    const int64_t i = order[position];
    if (suppressed[i]) continue;
    kept.push_back(i);
    for (size_t later = position + 1; later < order.size(); ++later) {
      const int64_t j = order[later];
      if (suppressed[j]) continue;
      const float w = std::max(0.0f, std::min(box[i][2], box[j][2]) - std::max(box[i][0], box[j][0]) + 1.0f);
      const float h = std::max(0.0f, std::min(box[i][3], box[j][3]) - std::max(box[i][1], box[j][1]) + 1.0f);
      const float inter = w * h;
      const float overlap = inter / (area[i] + area[j] - inter);
      // The references keep a box when overlap <= threshold; NaN overlaps are therefore dropped.
      if (!(overlap <= iou_threshold)) suppressed[j] = 1;
    }
  }
  return kept;
}

}  // namespace heygem::models::detection
