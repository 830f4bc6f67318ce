#include "daemon/pipeline/face_track.hpp"

#include <algorithm>

namespace heygem::pipeline {

std::optional<FaceBox> padded_box(float x1, float y1, float x2, float y2, const Pads& pads, int frame_width,
                                  int frame_height) {
  auto truncated = [](float v) { return static_cast<int>(std::max(0.0f, v)); };
  FaceBox box;
  box.top = std::max(0, truncated(y1) - pads.top);
  box.bottom = std::min(frame_height, truncated(y2) + pads.bottom);
  box.left = std::max(0, truncated(x1) - pads.left);
  box.right = std::min(frame_width, truncated(x2) + pads.right);
  if (box.width() <= 0 || box.height() <= 0) return std::nullopt;
  return box;
}

BoxSmoother::BoxSmoother(int window, bool enabled) : window_(std::max(1, window)), enabled_(enabled) {}

BoxSmoother::Item BoxSmoother::to_item(const Entry& entry) {
  const auto& v = entry.value;
  FaceBox box{static_cast<int>(v[1]), static_cast<int>(v[3]), static_cast<int>(v[0]), static_cast<int>(v[2])};
  return {entry.frame, box};
}

void BoxSmoother::trim_history() {
  // keep at most window-1 emitted entries: the tail rule never looks further back
  int64_t emitted = 0;
  for (const auto& e : segment_) emitted += e.emitted ? 1 : 0;
  while (emitted > window_ - 1 && !segment_.empty() && segment_.front().emitted) {
    segment_.pop_front();
    ++first_index_;
    --emitted;
  }
}

std::vector<BoxSmoother::Item> BoxSmoother::push(int64_t frame, std::optional<FaceBox> box) {
  std::vector<Item> ready;
  if (!box) {
    ready = close_segment();
    ready.push_back({frame, std::nullopt});
    return ready;
  }
  if (!enabled_) return {{frame, box}};

  segment_.push_back({frame, {box->left, box->top, box->right, box->bottom}, false});
  ++segment_length_;
  // the first pending entry is final once the window after it is complete
  auto first_pending = std::find_if(segment_.begin(), segment_.end(), [](const Entry& e) { return !e.emitted; });
  while (std::distance(first_pending, segment_.end()) >= window_) {
    std::array<int64_t, 4> sum{};
    for (int k = 0; k < window_; ++k)
      for (int c = 0; c < 4; ++c) sum[c] += first_pending[k].value[c];
    for (int c = 0; c < 4; ++c)
      first_pending->value[c] = static_cast<int64_t>(static_cast<double>(sum[c]) / window_);
    first_pending->emitted = true;
    ready.push_back(to_item(*first_pending));
    ++first_pending;
  }
  trim_history();
  return ready;
}

std::vector<BoxSmoother::Item> BoxSmoother::close_segment() {
  std::vector<Item> ready;
  const int64_t length = segment_length_;
  // Python's boxes[len - T:] with a negative start counts from the end (clamped at 0).
  int64_t start = length - window_;
  if (start < 0) start = std::max<int64_t>(0, length + start);
  for (size_t pos = 0; pos < segment_.size(); ++pos) {
    Entry& entry = segment_[pos];
    if (entry.emitted) continue;
    std::array<double, 4> sum{};
    int64_t count = 0;
    for (int64_t index = start; index < length; ++index, ++count) {
      const Entry& w = segment_[static_cast<size_t>(index - first_index_)];
      for (int c = 0; c < 4; ++c) sum[c] += static_cast<double>(w.value[c]);
    }
    for (int c = 0; c < 4; ++c) entry.value[c] = static_cast<int64_t>(sum[c] / static_cast<double>(count));
    entry.emitted = true;
    ready.push_back(to_item(entry));
  }
  segment_.clear();
  segment_length_ = 0;
  first_index_ = 0;
  return ready;
}

std::vector<BoxSmoother::Item> BoxSmoother::finish() { return close_segment(); }

}  // namespace heygem::pipeline
