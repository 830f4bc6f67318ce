#pragma once
// From per-frame detections to the boxes the generator crops: padding as Wav2Lip's --pads, and the
// reference's 5-frame smoothing, computed as a stream with a bounded look-ahead.
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

namespace heygem::pipeline {

// Integer pixel box, half-open: rows [top, bottom), columns [left, right).
struct FaceBox {
  int top = 0, bottom = 0, left = 0, right = 0;
  int width() const { return right - left; }
  int height() const { return bottom - top; }
  bool operator==(const FaceBox&) const = default;
};

struct Pads {
  int top = 0, bottom = 10, left = 0, right = 0;  // Wav2Lip's default --pads 0 10 0 0
};

// The reference's conversion of a detector box: clip negatives to 0, truncate to int, add the pads,
// clamp to the frame. Returns nullopt when the padded box is empty.
std::optional<FaceBox> padded_box(float x1, float y1, float x2, float y2, const Pads& pads, int frame_width,
                                  int frame_height);

// Streaming form of Wav2Lip's get_smoothened_boxes(boxes, T): box i becomes the mean of boxes
// [i, i+T) truncated to int, computed in place, so near the end the window [len-T, len) mixes already
// smoothed boxes with raw ones, exactly as the reference does. A frame without a face ends a segment;
// each segment is smoothed as if it were a whole video.
class BoxSmoother {
 public:
  struct Item {
    int64_t frame = 0;
    std::optional<FaceBox> box;
  };

  explicit BoxSmoother(int window = 5, bool enabled = true);

  // Feeds the next frame in order; returns the frames whose smoothed box is now final.
  std::vector<Item> push(int64_t frame, std::optional<FaceBox> box);
  // End of stream: returns everything still held.
  std::vector<Item> finish();

 private:
  struct Entry {
    int64_t frame;
    std::array<int64_t, 4> value;  // x1, y1, x2, y2 as in the reference
    bool emitted;
  };
  std::vector<Item> close_segment();
  void trim_history();
  static Item to_item(const Entry& entry);

  int window_;
  bool enabled_;
  std::deque<Entry> segment_;  // the last window-1 emitted entries, then all pending ones
  int64_t segment_length_ = 0;  // entries seen in the current segment
  int64_t first_index_ = 0;     // segment index of segment_.front()
};

}  // namespace heygem::pipeline
