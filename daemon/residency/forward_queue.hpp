#pragma once
// The one thread per device that runs every forward on it (llama.cpp-server style): the items'
// pipeline threads only submit tasks and wait. Tasks of the same model instance and input shapes,
// from any number of items, are coalesced into one forward (dynamic batching: the oldest task waits
// a bounded time for others when another item is feeding the same model), and the results are cut
// back per task. Warm-ups and heartbeats run here too, as exclusive tasks, so they never overlap a
// batch. Cancelling an item drops its queued tasks at once; a forward already running completes.
//
// A model kind joins the queue with one small function (see generate() and detect()): which
// tensors its rows are, and how a batch of them is computed.
#include <ATen/Tensor.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "daemon/models/face_detector.hpp"
#include "daemon/residency/model_registry.hpp"

namespace heygem::models {
class Wav2LipGenerator;
}

namespace heygem::residency {

// Who submits a task: its item (cancel() drops all of that item's queued tasks) and, optionally, how
// to ask whether the item was cancelled (polled while its pipeline thread waits).
struct ForwardClient {
  const void* item = nullptr;
  std::function<bool()> cancelled;
};

struct ForwardQueueStats {
  std::uint64_t batches = 0;    // coalesced forwards run
  std::uint64_t tasks = 0;      // tasks they served
  std::uint64_t rows = 0;       // rows (faces, frames) they computed
  std::uint64_t exclusive = 0;  // warm-ups and heartbeats run
  std::uint64_t dropped = 0;    // tasks of cancelled items dropped before they ran
  std::size_t queued = 0;       // tasks waiting now (batchable and exclusive)
  double tasks_per_batch() const { return batches ? static_cast<double>(tasks) / static_cast<double>(batches) : 0; }
};

// One piece of work the owner thread ran, for tests and diagnostics.
struct ForwardSpan {
  std::string what;  // "batch", or the exclusive task's label ("heartbeat", "warm-up")
  std::chrono::steady_clock::time_point start, end;
  std::size_t tasks = 0;
  int64_t rows = 0;
};

class ForwardQueue {
 public:
  // A batch's result: rows along dim 0 of a tensor, or one entry per row.
  using Output = std::variant<at::Tensor, std::vector<models::FrameDetections>>;
  // Computes a batch: each input is the tasks' tensors concatenated along dim 0, in queue order.
  using BatchForward = std::function<Output(const std::vector<at::Tensor>& inputs)>;

  ForwardQueue(std::string device, BatchingSettings settings);
  ~ForwardQueue();  // queued tasks fail with Error(cancelled); a running one completes first
  ForwardQueue(const ForwardQueue&) = delete;
  ForwardQueue& operator=(const ForwardQueue&) = delete;

  const std::string& device() const { return device_; }
  void update_settings(const BatchingSettings& settings);

  // Wav2Lip: mel [B, 1, 80, 16], faces [B, 6, 96, 96] -> [B, 3, 96, 96] on the model's device. A
  // batch below `warmed_batch` rows is cut into the warmed sizes (models/warm_batches.hpp).
  at::Tensor generate(const models::Wav2LipGenerator& generator, const at::Tensor& mel, const at::Tensor& faces,
                      int64_t warmed_batch, const ForwardClient& client);
  // A face detector: uint8 [N, H, W, 3] frames (batched with frames of the same size) -> N results.
  std::vector<models::FrameDetections> detect(const models::FaceDetector& detector, const at::Tensor& frames,
                                              const ForwardClient& client);

  // The general form: tasks batch together when `model` is the same and every input has the same
  // trailing shape, dtype and device; the first task's `forward` computes the batch, so every task
  // of one model must compute the same per row. The inputs must own their memory (the queue keeps
  // them until the forward ran). Blocks until the result is there; throws what the forward threw,
  // or Error(cancelled) when the item was cancelled before the task ran.
  Output submit(const void* model, std::vector<at::Tensor> inputs, BatchForward forward, const ForwardClient& client);

  // Runs `work` on the owner thread, alone (warm-ups, heartbeats); blocks and rethrows.
  void run_exclusive(const std::string& what, std::function<void()> work);

  // Drops the item's queued tasks; their waiters get Error(cancelled) now.
  void cancel(const void* item);

  ForwardQueueStats stats() const;
  std::vector<ForwardSpan> recent_spans() const;  // the last kSpanHistory, oldest first
  static constexpr std::size_t kSpanHistory = 512;

 private:
  struct Task {
    const void* model = nullptr;  // null: an exclusive task
    std::vector<at::Tensor> inputs;
    int64_t rows = 0;
    BatchForward forward;
    std::function<void()> exclusive;
    std::string what;
    const void* item = nullptr;
    std::chrono::steady_clock::time_point queued_at;
    std::shared_ptr<std::promise<Output>> result;
  };
  using Lock = std::unique_lock<std::mutex>;

  void run();
  Output wait(std::future<Output> result, const ForwardClient& client);
  std::future<Output> enqueue(Task task);
  bool batches_with(const Task& a, const Task& b) const;
  bool another_item_feeds(const Task& oldest, Lock& lock) const;
  std::vector<Task> take_batch(Lock& lock);
  std::vector<Output> run_batch(const std::vector<Task>& batch);
  void record(ForwardSpan span, bool batched, Lock& lock);

  const std::string device_;
  BatchingSettings settings_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  // When each item last submitted to each model: the bounded wait is only worth it when another
  // item feeds the same model.
  std::map<const void*, std::map<const void*, std::chrono::steady_clock::time_point>> feeders_;
  ForwardQueueStats stats_;
  std::deque<ForwardSpan> spans_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace heygem::residency
