#include "daemon/residency/forward_queue.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <set>

#include "common/errors.hpp"
#include "daemon/models/warm_batches.hpp"
#include "daemon/models/wav2lip.hpp"

namespace heygem::residency {
namespace {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

// An item counts as feeding a model while it submitted to it this recently: longer than a CPU
// generator batch takes, so two items alternating on the CPU still find each other.
constexpr auto kFeederWindow = 2s;
// How often a waiting pipeline thread asks whether its item was cancelled.
constexpr auto kCancelPoll = 20ms;

// The generator on `faces` cut into the batch sizes the daemon warmed, so a short batch does not
// pay for building kernels of a new shape.
at::Tensor generate_in_warmed_shapes(const models::Wav2LipGenerator& generator, const at::Tensor& mel,
                                     const at::Tensor& faces, int64_t full_batch) {
  const auto pieces = models::split_into_warmed_batches(faces.size(0), full_batch);
  if (pieces.size() <= 1) return generator.generate(mel, faces);
  std::vector<at::Tensor> outputs;
  int64_t start = 0;
  for (const int64_t piece : pieces) {
    outputs.push_back(generator.generate(mel.narrow(0, start, piece), faces.narrow(0, start, piece)));
    start += piece;
  }
  return at::cat(outputs, 0);
}

int64_t rows_of(const ForwardQueue::Output& output) {
  if (const auto* tensor = std::get_if<at::Tensor>(&output)) return tensor->dim() > 0 ? tensor->size(0) : -1;
  return static_cast<int64_t>(std::get<std::vector<models::FrameDetections>>(output).size());
}

ForwardQueue::Output rows_from(const ForwardQueue::Output& output, int64_t start, int64_t count) {
  if (const auto* tensor = std::get_if<at::Tensor>(&output)) return tensor->narrow(0, start, count);
  const auto& all = std::get<std::vector<models::FrameDetections>>(output);
  return std::vector<models::FrameDetections>(all.begin() + start, all.begin() + start + count);
}

}  // namespace

ForwardQueue::ForwardQueue(std::string device, BatchingSettings settings)
    : device_(std::move(device)), settings_(settings) {
  thread_ = std::thread([this] { run(); });
}

ForwardQueue::~ForwardQueue() {
  std::deque<Task> dropped;
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  wake_.notify_all();
  for (auto& task : dropped)
    task.result->set_exception(
        std::make_exception_ptr(Error(ErrorCode::cancelled, "the forward queue of " + device_ + " stopped")));
  thread_.join();
}

void ForwardQueue::update_settings(const BatchingSettings& settings) {
  {
    const std::lock_guard lock(mutex_);
    settings_ = settings;
  }
  wake_.notify_all();
}

at::Tensor ForwardQueue::generate(const models::Wav2LipGenerator& generator, const at::Tensor& mel,
                                  const at::Tensor& faces, int64_t warmed_batch, const ForwardClient& client) {
  auto forward = [&generator, warmed_batch](const std::vector<at::Tensor>& inputs) -> Output {
    return generate_in_warmed_shapes(generator, inputs[0], inputs[1], warmed_batch);
  };
  return std::get<at::Tensor>(submit(&generator, {mel, faces}, std::move(forward), client));
}

std::vector<models::FrameDetections> ForwardQueue::detect(const models::FaceDetector& detector,
                                                          const at::Tensor& frames, const ForwardClient& client) {
  auto forward = [&detector](const std::vector<at::Tensor>& inputs) -> Output { return detector.detect(inputs[0]); };
  return std::get<std::vector<models::FrameDetections>>(submit(&detector, {frames}, std::move(forward), client));
}

ForwardQueue::Output ForwardQueue::submit(const void* model, std::vector<at::Tensor> inputs, BatchForward forward,
                                          const ForwardClient& client) {
  if (!model || inputs.empty() || inputs.front().dim() == 0)
    throw Error(ErrorCode::internal, "forward queue: a task needs a model and batched inputs");
  Task task;
  task.rows = inputs.front().size(0);
  for (const auto& input : inputs)
    if (input.dim() == 0 || input.size(0) != task.rows)
      throw Error(ErrorCode::internal, "forward queue: the inputs of a task differ in rows");
  task.model = model;
  task.inputs = std::move(inputs);
  task.forward = std::move(forward);
  task.item = client.item;
  return wait(enqueue(std::move(task)), client);
}

void ForwardQueue::run_exclusive(const std::string& what, std::function<void()> work) {
  Task task;
  task.exclusive = std::move(work);
  task.what = what;
  enqueue(std::move(task)).get();
}

std::future<ForwardQueue::Output> ForwardQueue::enqueue(Task task) {
  task.result = std::make_shared<std::promise<Output>>();
  auto future = task.result->get_future();
  {
    const std::lock_guard lock(mutex_);
    if (stopping_) throw Error(ErrorCode::cancelled, "the forward queue of " + device_ + " stopped");
    task.queued_at = steady::now();
    if (task.model) feeders_[task.model][task.item] = task.queued_at;
    queue_.push_back(std::move(task));
  }
  wake_.notify_all();
  return future;
}

ForwardQueue::Output ForwardQueue::wait(std::future<Output> result, const ForwardClient& client) {
  if (client.cancelled) {
    while (result.wait_for(kCancelPoll) != std::future_status::ready) {
      if (client.cancelled()) {
        cancel(client.item);  // then: dropped (throws below), or already running (its result)
        break;
      }
    }
  }
  return result.get();
}

void ForwardQueue::cancel(const void* item) {
  std::vector<Task> dropped;
  {
    const std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->model && it->item == item) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    stats_.dropped += dropped.size();
    for (auto& [model, items] : feeders_) items.erase(item);
  }
  wake_.notify_all();
  for (auto& task : dropped) task.result->set_exception(std::make_exception_ptr(Error(ErrorCode::cancelled, "cancelled")));
}

ForwardQueueStats ForwardQueue::stats() const {
  const std::lock_guard lock(mutex_);
  auto stats = stats_;
  stats.queued = queue_.size();
  return stats;
}

std::vector<ForwardSpan> ForwardQueue::recent_spans() const {
  const std::lock_guard lock(mutex_);
  return {spans_.begin(), spans_.end()};
}

// --- the owner thread ----------------------------------------------------------------------------

bool ForwardQueue::batches_with(const Task& a, const Task& b) const {
  if (!a.model || a.model != b.model || a.inputs.size() != b.inputs.size()) return false;
  for (std::size_t i = 0; i < a.inputs.size(); ++i) {
    const auto& x = a.inputs[i];
    const auto& y = b.inputs[i];
    if (x.dim() != y.dim() || x.scalar_type() != y.scalar_type() || x.device() != y.device()) return false;
    for (int64_t d = 1; d < x.dim(); ++d)
      if (x.size(d) != y.size(d)) return false;
  }
  return true;
}

// True when an item with no task in this batch-to-be fed the oldest task's model lately.
bool ForwardQueue::another_item_feeds(const Task& oldest, Lock&) const {
  std::set<const void*> waiting;
  for (const auto& task : queue_)
    if (batches_with(oldest, task)) waiting.insert(task.item);
  const auto found = feeders_.find(oldest.model);
  if (found == feeders_.end()) return false;
  const auto now = steady::now();
  for (const auto& [item, last] : found->second)
    if (!waiting.count(item) && now - last < kFeederWindow) return true;
  return false;
}

std::vector<ForwardQueue::Task> ForwardQueue::take_batch(Lock&) {
  std::vector<Task> batch;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  if (!batch.front().model) return batch;
  int64_t rows = batch.front().rows;
  for (auto it = queue_.begin(); it != queue_.end() && rows < settings_.max_rows;) {
    if (batches_with(batch.front(), *it) && rows + it->rows <= settings_.max_rows) {
      rows += it->rows;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  return batch;
}

void ForwardQueue::run() {
  const c10::InferenceMode inference;
  Lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const Task& oldest = queue_.front();
    if (oldest.model) {
      // Dynamic batching: the oldest task waits, up to max_wait since it was queued, while its
      // batch has room and another item that feeds the model may add to it.
      int64_t rows = 0;
      for (const auto& task : queue_)
        if (batches_with(oldest, task)) rows += task.rows;
      const auto deadline = oldest.queued_at + settings_.max_wait;
      if (rows < settings_.max_rows && steady::now() < deadline && another_item_feeds(oldest, lock)) {
        wake_.wait_until(lock, deadline);
        continue;  // the queue may have changed (new tasks, a cancel): decide afresh
      }
    }
    auto batch = take_batch(lock);
    lock.unlock();
    ForwardSpan span;
    span.start = steady::now();
    std::vector<Output> results;  // one per task of the batch
    std::exception_ptr failure;
    try {
      if (batch.front().model) {
        results = run_batch(batch);
      } else {
        batch.front().exclusive();
        results.emplace_back();
      }
    } catch (...) {
      failure = std::current_exception();
    }
    span.end = steady::now();
    span.what = batch.front().model ? "batch" : batch.front().what;
    span.tasks = batch.size();
    for (const auto& task : batch) span.rows += task.rows;
    lock.lock();
    record(std::move(span), batch.front().model != nullptr, lock);  // before the waiters wake: they may read the stats
    lock.unlock();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (failure) batch[i].result->set_exception(failure);
      else batch[i].result->set_value(std::move(results[i]));
    }
    batch.clear();  // the inputs go before the lock is taken again
    lock.lock();
  }
}

// Concatenates the tasks' inputs, runs the first task's forward and cuts the result per task.
std::vector<ForwardQueue::Output> ForwardQueue::run_batch(const std::vector<Task>& batch) {
  std::vector<at::Tensor> inputs;
  int64_t total = 0;
  for (const auto& task : batch) total += task.rows;
  if (batch.size() == 1) {
    inputs = batch.front().inputs;
  } else {
    for (std::size_t i = 0; i < batch.front().inputs.size(); ++i) {
      std::vector<at::Tensor> parts;
      for (const auto& task : batch) parts.push_back(task.inputs[i]);
      inputs.push_back(at::cat(parts, 0));
    }
  }
  const Output output = batch.front().forward(inputs);
  if (rows_of(output) != total)
    throw Error(ErrorCode::internal, "forward queue: a batch of " + std::to_string(total) + " rows gave " +
                                         std::to_string(rows_of(output)) + " results");
  std::vector<Output> results;
  int64_t start = 0;
  for (const auto& task : batch) {
    results.push_back(rows_from(output, start, task.rows));
    start += task.rows;
  }
  return results;
}

void ForwardQueue::record(ForwardSpan span, bool batched, Lock&) {
  if (batched) {
    stats_.batches += 1;
    stats_.tasks += span.tasks;
    stats_.rows += static_cast<std::uint64_t>(span.rows);
  } else {
    stats_.exclusive += 1;
  }
  spans_.push_back(std::move(span));
  if (spans_.size() > kSpanHistory) spans_.pop_front();
}

}  // namespace heygem::residency
