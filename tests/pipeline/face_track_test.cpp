#include "daemon/pipeline/face_track.hpp"

#include <gtest/gtest.h>

#include <random>

#include "daemon/pipeline/timeline.hpp"

namespace heygem::pipeline {
namespace {

// Direct transcription of the reference's in-place get_smoothened_boxes on an int64 array.
std::vector<std::array<int64_t, 4>> reference_smooth(std::vector<std::array<int64_t, 4>> boxes, int T) {
  const int64_t n = static_cast<int64_t>(boxes.size());
  for (int64_t i = 0; i < n; ++i) {
    int64_t begin = i, end = i + T;
    if (i + T > n) {
      begin = n - T < 0 ? std::max<int64_t>(0, n + (n - T)) : n - T;
      end = n;
    }
    std::array<double, 4> mean{};
    for (int64_t j = begin; j < end; ++j)
      for (int c = 0; c < 4; ++c) mean[c] += static_cast<double>(boxes[j][c]);
    for (int c = 0; c < 4; ++c) boxes[i][c] = static_cast<int64_t>(mean[c] / static_cast<double>(end - begin));
  }
  return boxes;
}

TEST(BoxSmoother, MatchesReferenceOnRandomSequences) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> coord(0, 400);
  for (int length = 1; length <= 14; ++length) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<std::array<int64_t, 4>> raw(length);
      for (auto& b : raw) {
        int x = coord(rng), y = coord(rng);
        b = {x, y, x + 1 + coord(rng) / 4, y + 1 + coord(rng) / 4};
      }
      auto expected = reference_smooth(raw, 5);
      BoxSmoother smoother(5);
      std::vector<BoxSmoother::Item> got;
      for (int i = 0; i < length; ++i) {
        auto ready = smoother.push(i, FaceBox{int(raw[i][1]), int(raw[i][3]), int(raw[i][0]), int(raw[i][2])});
        got.insert(got.end(), ready.begin(), ready.end());
        EXPECT_LE(i + 1 - static_cast<int>(got.size()), 5) << "look-ahead must stay bounded";
      }
      auto rest = smoother.finish();
      got.insert(got.end(), rest.begin(), rest.end());
      ASSERT_EQ(got.size(), raw.size());
      for (int i = 0; i < length; ++i) {
        ASSERT_EQ(got[i].frame, i);
        ASSERT_TRUE(got[i].box);
        FaceBox want{int(expected[i][1]), int(expected[i][3]), int(expected[i][0]), int(expected[i][2])};
        EXPECT_EQ(*got[i].box, want) << "length " << length << " frame " << i;
      }
    }
  }
}

TEST(BoxSmoother, FrameWithoutFaceSplitsSegments) {
  BoxSmoother smoother(5);
  std::vector<BoxSmoother::Item> got;
  auto feed = [&](int64_t f, std::optional<FaceBox> b) {
    auto r = smoother.push(f, b);
    got.insert(got.end(), r.begin(), r.end());
  };
  feed(0, FaceBox{0, 10, 0, 10});
  feed(1, FaceBox{10, 20, 10, 20});
  feed(2, std::nullopt);
  feed(3, FaceBox{100, 110, 100, 110});
  auto r = smoother.finish();
  got.insert(got.end(), r.begin(), r.end());
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].box, (FaceBox{5, 15, 5, 15}));  // mean of the first segment only
  EXPECT_FALSE(got[2].box.has_value());
  EXPECT_EQ(got[3].box, (FaceBox{100, 110, 100, 110}));
}

TEST(BoxSmoother, DisabledPassesThrough) {
  BoxSmoother smoother(5, false);
  auto r = smoother.push(0, FaceBox{1, 2, 3, 4});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].box, (FaceBox{1, 2, 3, 4}));
}

TEST(PaddedBox, ClipsTruncatesPadsAndClamps) {
  auto box = padded_box(-3.7f, 5.9f, 100.2f, 280.0f, Pads{}, 360, 288);
  ASSERT_TRUE(box);
  EXPECT_EQ(*box, (FaceBox{5, 288, 0, 100}));
  EXPECT_FALSE(padded_box(10, 10, 10, 20, Pads{0, 0, 0, 0}, 360, 288).has_value());
}

TEST(Timeline, PingPongAndForward) {
  std::vector<int64_t> pingpong, forward;
  for (int i = 0; i < 10; ++i) {
    pingpong.push_back(source_frame_index(i, 4, LoopMode::pingpong));
    forward.push_back(source_frame_index(i, 4, LoopMode::forward));
  }
  EXPECT_EQ(pingpong, (std::vector<int64_t>{0, 1, 2, 3, 2, 1, 0, 1, 2, 3}));
  EXPECT_EQ(forward, (std::vector<int64_t>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(source_frame_index(5, 1, LoopMode::pingpong), 0);
  EXPECT_THROW(parse_loop_mode("sideways"), std::exception);
}

}  // namespace
}  // namespace heygem::pipeline
