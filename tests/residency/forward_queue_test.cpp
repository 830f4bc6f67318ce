// The device's forward queue on the CPU with real models (the untrained hash-init generator and the
// real RetinaFace mobilenet0.25): tasks of two items served by one forward, each result equal to the
// item's solo result (within the rounding of another batch size), a cancel that drops only its item's tasks, the bounded wait, and heartbeats
// that never overlap a batch. No test depends on how fast this machine is: the owner thread is held
// in an exclusive task ("the gate") while the tasks of a scenario are queued.
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "common/errors.hpp"
#include "daemon/models/retinaface.hpp"
#include "daemon/models/wav2lip.hpp"
#include "daemon/residency/forward_queue.hpp"
#include "daemon/residency/model_registry.hpp"
#include "daemon/residency/resident_model.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::residency {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

const models::Wav2LipGenerator& generator() {
  static const auto instance = models::Wav2LipGenerator::untrained(models::Placement{}, untrained_generator_spec());
  return *instance;
}

const models::RetinaFaceDetector& detector() {
  static const auto instance = models::RetinaFaceDetector::from_file(
      test::shared_root() / "models" / "retinaface_mobilenet0.25.pth", models::Placement{});
  return *instance;
}

// Generator inputs that differ per item (`seed`): mel [rows, 1, 80, 16], faces [rows, 6, 96, 96].
std::pair<at::Tensor, at::Tensor> generator_inputs(int64_t rows, double seed) {
  const auto mel = at::sin(at::linspace(seed, seed + 50, rows * 80 * 16, at::kFloat)).reshape({rows, 1, 80, 16}).mul_(2);
  const auto faces = at::cos(at::linspace(seed, seed + 70, rows * 6 * 96 * 96, at::kFloat))
                         .reshape({rows, 6, 96, 96}).mul_(0.5).add_(0.5);
  return {mel, faces};
}

// The RetinaFace fixture's frame 0 as uint8 [1, H, W, 3] BGR (its network input plus the means).
at::Tensor fixture_frame() {
  const auto raw = test::load_raw("retinaface", "input_0.f32");
  auto input = at::from_blob(const_cast<float*>(raw.f32.data()), raw.shape, at::kFloat).clone();
  const auto means = at::tensor({104.0f, 117.0f, 123.0f}).reshape({1, 3, 1, 1});
  return input.add(means).round().clamp(0, 255).to(at::kByte).permute({0, 2, 3, 1}).contiguous();
}

// Frames of one item: the fixture frame, mirrored for `mirrored` items so two items see faces at
// different places, repeated `count` times with a brightness shift per frame.
at::Tensor detector_frames(int64_t count, bool mirrored) {
  auto frame = fixture_frame();
  if (mirrored) frame = frame.flip({2}).contiguous();
  std::vector<at::Tensor> frames;
  for (int64_t i = 0; i < count; ++i) frames.push_back(frame.to(at::kInt).add(i * 7).clamp(0, 255).to(at::kByte));
  return at::cat(frames, 0);
}

// On CPU float32 a row's result depends on the batch it ran in, by rounding only: oneDNN blocks a
// convolution differently for another batch size. The bounds are the measured worst cases with
// margin (generator output in [0, 1]; detector boxes and landmarks in pixels, scores in [0, 1]).
constexpr double kGeneratorBound = 5e-5;   // measured 2.9e-6
constexpr double kDetectorPixelBound = 1e-3;  // measured 3.1e-5
constexpr double kDetectorScoreBound = 1e-5;  // measured 0

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The largest pixel and score differences of two detectors' answers; nullopt when the faces found differ.
std::optional<std::pair<double, double>> detection_diff(const std::vector<models::FrameDetections>& a,
                                                        const std::vector<models::FrameDetections>& b) {
  if (a.size() != b.size()) return std::nullopt;
  double pixels = 0, scores = 0;
  for (std::size_t f = 0; f < a.size(); ++f) {
    if (a[f].size() != b[f].size()) return std::nullopt;
    for (std::size_t i = 0; i < a[f].size(); ++i) {
      const auto &x = a[f][i], &y = b[f][i];
      for (const auto& [p, q] : {std::pair{x.x1, y.x1}, {x.y1, y.y1}, {x.x2, y.x2}, {x.y2, y.y2}})
        pixels = std::max(pixels, static_cast<double>(std::abs(p - q)));
      for (std::size_t k = 0; k < x.landmarks.size(); ++k)
        pixels = std::max(pixels, static_cast<double>(std::abs(x.landmarks[k] - y.landmarks[k])));
      scores = std::max(scores, static_cast<double>(std::abs(x.score - y.score)));
    }
  }
  return std::pair{pixels, scores};
}

void expect_same_detections(const std::vector<models::FrameDetections>& got,
                            const std::vector<models::FrameDetections>& solo, const char* item) {
  const auto diff = detection_diff(got, solo);
  ASSERT_TRUE(diff) << item << ": other faces than alone";
  std::printf("item %s: detections differ from its solo run by %.3g px, %.3g in score\n", item, diff->first, diff->second);
  EXPECT_LE(diff->first, kDetectorPixelBound) << item;
  EXPECT_LE(diff->second, kDetectorScoreBound) << item;
}

template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 60s) {
  const auto deadline = steady::now() + limit;
  while (steady::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// Holds the owner thread in an exclusive task until open(): everything submitted meanwhile is
// queued when the owner takes its next batch.
class Gate {
 public:
  explicit Gate(ForwardQueue& queue) {
    auto entered = std::make_shared<std::promise<void>>();
    auto running = entered->get_future();
    holder_ = std::thread([&queue, entered, opened = opened_.get_future().share()] {
      queue.run_exclusive("gate", [&] {
        entered->set_value();
        opened.wait();
      });
    });
    running.wait();
  }
  ~Gate() {
    open();
    holder_.join();
  }
  void open() {
    if (!open_) opened_.set_value();
    open_ = true;
  }

 private:
  std::promise<void> opened_;
  bool open_ = false;
  std::thread holder_;
};

BatchingSettings no_wait() {
  BatchingSettings settings;
  settings.max_wait = 0us;
  return settings;
}

TEST(ForwardQueue, OneGeneratorForwardServesTwoItemsAndRoutesEachResult) {
  ForwardQueue queue("cpu", no_wait());
  const int item_a = 0, item_b = 0;
  const auto [mel_a, faces_a] = generator_inputs(3, 0.0);
  const auto [mel_b, faces_b] = generator_inputs(5, 11.0);
  // Solo: each item alone on the queue.
  const auto solo_a = queue.generate(generator(), mel_a, faces_a, 16, {&item_a, {}});
  const auto solo_b = queue.generate(generator(), mel_b, faces_b, 16, {&item_b, {}});
  // The routing check means something: the items' results differ far beyond the bound.
  ASSERT_GT(max_abs_diff(solo_a, solo_b.narrow(0, 0, 3)), 1000 * kGeneratorBound);
  const auto before = queue.stats();
  EXPECT_EQ(before.batches, 2u);

  at::Tensor together_a, together_b;
  {
    Gate gate(queue);
    std::thread a([&] { together_a = queue.generate(generator(), mel_a, faces_a, 16, {&item_a, {}}); });
    std::thread b([&] { together_b = queue.generate(generator(), mel_b, faces_b, 16, {&item_b, {}}); });
    ASSERT_TRUE(eventually([&] { return queue.stats().queued == 2; }));
    gate.open();
    a.join();
    b.join();
  }
  const auto after = queue.stats();
  EXPECT_EQ(after.batches - before.batches, 1u) << "one forward for both items";
  EXPECT_EQ(after.tasks - before.tasks, 2u);
  EXPECT_EQ(after.rows - before.rows, 8u);
  const auto spans = queue.recent_spans();
  ASSERT_FALSE(spans.empty());
  EXPECT_EQ(spans.back().what, "batch");
  EXPECT_EQ(spans.back().tasks, 2u);
  // Each item gets its solo result (within the rounding of another batch size).
  ASSERT_EQ(together_a.sizes(), solo_a.sizes());
  ASSERT_EQ(together_b.sizes(), solo_b.sizes());
  const double diff_a = max_abs_diff(together_a, solo_a), diff_b = max_abs_diff(together_b, solo_b);
  std::printf("generator rows batched with another item's differ from solo by %.3g (a), %.3g (b)\n", diff_a, diff_b);
  EXPECT_LE(diff_a, kGeneratorBound);
  EXPECT_LE(diff_b, kGeneratorBound);
}

TEST(ForwardQueue, DetectorBatchesFramesOfOneSizeAcrossItems) {
  ForwardQueue queue("cpu", no_wait());
  const int item_a = 0, item_b = 0, item_c = 0;
  const auto frames_a = detector_frames(2, false);
  const auto frames_b = detector_frames(1, true);
  const auto frames_c = frames_a.narrow(2, 0, 320).contiguous();  // another width: another batch
  const auto solo_a = queue.detect(detector(), frames_a, {&item_a, {}});
  const auto solo_b = queue.detect(detector(), frames_b, {&item_b, {}});
  const auto solo_c = queue.detect(detector(), frames_c, {&item_c, {}});
  ASSERT_FALSE(solo_a.at(0).empty());
  ASSERT_FALSE(solo_b.at(0).empty());
  ASSERT_GT(std::abs(solo_a[0][0].x1 - solo_b[0][0].x1), 100 * kDetectorPixelBound);  // mirrored: the face sits elsewhere
  const auto before = queue.stats();

  std::vector<models::FrameDetections> got_a, got_b, got_c;
  {
    Gate gate(queue);
    std::thread a([&] { got_a = queue.detect(detector(), frames_a, {&item_a, {}}); });
    std::thread b([&] { got_b = queue.detect(detector(), frames_b, {&item_b, {}}); });
    std::thread c([&] { got_c = queue.detect(detector(), frames_c, {&item_c, {}}); });
    ASSERT_TRUE(eventually([&] { return queue.stats().queued == 3; }));
    gate.open();
    a.join();
    b.join();
    c.join();
  }
  const auto after = queue.stats();
  EXPECT_EQ(after.batches - before.batches, 2u) << "a and b in one forward, c (another frame size) alone";
  EXPECT_EQ(after.tasks - before.tasks, 3u);
  expect_same_detections(got_a, solo_a, "a");
  expect_same_detections(got_b, solo_b, "b");
  expect_same_detections(got_c, solo_c, "c");
}

TEST(ForwardQueue, CancelDropsOnlyThatItemsQueuedTasksAndWakesItsWaitersAtOnce) {
  ForwardQueue queue("cpu", no_wait());
  const int item_a = 0, item_b = 0;
  std::atomic<bool> a_cancelled{false};
  const ForwardClient client_a{&item_a, [&] { return a_cancelled.load(); }};
  const ForwardClient client_b{&item_b, [] { return false; }};
  const auto [mel_a, faces_a] = generator_inputs(2, 3.0);
  const auto [mel_b, faces_b] = generator_inputs(4, 7.0);
  const auto solo_b = queue.generate(generator(), mel_b, faces_b, 16, client_b);
  const auto before = queue.stats();

  at::Tensor got_b;
  {
    Gate gate(queue);
    auto submit_a = [&] {
      try {
        queue.generate(generator(), mel_a, faces_a, 16, client_a);
        return std::string("ran");
      } catch (const Error& error) {
        return std::string(error.code() == ErrorCode::cancelled ? "cancelled" : error.what());
      }
    };
    auto a1 = std::async(std::launch::async, submit_a);
    auto a2 = std::async(std::launch::async, submit_a);
    std::thread b([&] { got_b = queue.generate(generator(), mel_b, faces_b, 16, client_b); });
    ASSERT_TRUE(eventually([&] { return queue.stats().queued == 3; }));
    a_cancelled = true;
    // The gate still holds the owner: a's waiters must come back without any forward having run.
    ASSERT_EQ(a1.wait_for(30s), std::future_status::ready);
    ASSERT_EQ(a2.wait_for(30s), std::future_status::ready);
    EXPECT_EQ(a1.get(), "cancelled");
    EXPECT_EQ(a2.get(), "cancelled");
    EXPECT_EQ(queue.stats().queued, 1u) << "b's task stays queued";
    gate.open();
    b.join();
  }
  const auto after = queue.stats();
  EXPECT_EQ(after.dropped - before.dropped, 2u);
  EXPECT_EQ(after.batches - before.batches, 1u);
  EXPECT_EQ(after.tasks - before.tasks, 1u);
  EXPECT_EQ(after.rows - before.rows, 4u);
  EXPECT_TRUE(at::equal(got_b, solo_b)) << "alone in its batch, as alone on the queue";
}

TEST(ForwardQueue, TheOldestTaskWaitsBoundedForAnotherItemAndNeverForItself) {
  BatchingSettings settings;
  settings.max_wait = 30s;  // far longer than any step below may take
  ForwardQueue queue("cpu", settings);
  const int item_a = 0, item_b = 0;
  const auto [mel_a, faces_a] = generator_inputs(1, 1.0);
  const auto [mel_b, faces_b] = generator_inputs(1, 2.0);

  // A lone item: nobody else feeds the generator, so its task runs at once.
  auto started = steady::now();
  queue.generate(generator(), mel_a, faces_a, 16, {&item_a, {}});
  EXPECT_LT(steady::now() - started, 15s);

  // a fed the generator just now: b's task waits for a's next one and both run in one forward.
  const auto before = queue.stats();
  started = steady::now();
  auto b = std::async(std::launch::async, [&] { return queue.generate(generator(), mel_b, faces_b, 16, {&item_b, {}}); });
  ASSERT_TRUE(eventually([&] { return queue.stats().queued == 1; }));
  queue.generate(generator(), mel_a, faces_a, 16, {&item_a, {}});
  b.get();
  EXPECT_LT(steady::now() - started, 15s) << "the wait ends when a's task joins";
  EXPECT_EQ(queue.stats().batches - before.batches, 1u);
  EXPECT_EQ(queue.stats().tasks - before.tasks, 2u);

  // The wait is bounded: with a short bound and no second task, b's task runs alone after it.
  settings.max_wait = 300ms;
  queue.update_settings(settings);
  started = steady::now();
  queue.generate(generator(), mel_b, faces_b, 16, {&item_b, {}});
  EXPECT_GE(steady::now() - started, 300ms) << "a fed the generator lately: b waited for it";
  EXPECT_EQ(queue.stats().batches - before.batches, 2u);
}

ResidencyConfig generator_config(std::chrono::milliseconds heartbeat) {
  ModelSpec spec;
  spec.name = "lips";
  spec.kind = ModelKind::wav2lip;
  ResidencyConfig config;
  config.models = {spec};
  config.default_generator = spec.name;
  config.heartbeat_interval = heartbeat;
  config.warmup.generator_batch = 2;
  config.warmup.passes = 1;
  config.batching.max_wait = 0us;
  return config;
}

TEST(ForwardQueue, HeartbeatsAndWarmUpRunOnTheQueueAndNeverOverlapABatch) {
  const auto registry = make_model_registry(generator_config(5ms));
  registry->start();
  const auto lease = registry->acquire_generator("", {});
  ForwardQueue& queue = lease->forwards();
  const auto loaded = queue.recent_spans();
  ASSERT_FALSE(loaded.empty());
  EXPECT_EQ(loaded.front().what, "warm-up") << "the warm-up runs on the queue";
  std::atomic<bool> done{false};
  auto item = [&](double seed) {
    const auto [mel, faces] = generator_inputs(2, seed);
    while (!done) queue.generate(*lease->generator(), mel, faces, 16, {&seed, {}});
  };
  std::thread a(item, 1.0), b(item, 2.0);
  const auto heartbeats = [&] {
    for (const auto& row : registry->status()) return row.heartbeats;
    return std::uint64_t{0};
  };
  const bool beat = eventually([&] { return heartbeats() >= 3; }, 120s);
  done = true;
  a.join();
  b.join();
  ASSERT_TRUE(beat) << "no heartbeats while two items ran";

  std::vector<ForwardSpan> batches, exclusive;
  for (const auto& span : queue.recent_spans()) (span.what == "batch" ? batches : exclusive).push_back(span);
  const auto heartbeat_spans = std::count_if(exclusive.begin(), exclusive.end(),
                                             [](const ForwardSpan& span) { return span.what == "heartbeat"; });
  EXPECT_GE(heartbeat_spans, 3) << "the heartbeat's probes run on the queue";
  ASSERT_GE(batches.size(), 2u);
  for (const auto& probe : exclusive)
    for (const auto& batch : batches)
      EXPECT_TRUE(probe.end <= batch.start || batch.end <= probe.start)
          << probe.what << " overlapped a batch of " << batch.tasks << " tasks";
  registry->stop();
}

}  // namespace
}  // namespace heygem::residency
