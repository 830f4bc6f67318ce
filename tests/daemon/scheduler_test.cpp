// Scheduling behaviour (FIFO per device, slots, cancel, restart recovery, watchers, retention) with
// the copying executor of copy_executor.hpp.
#include "daemon/jobs/scheduler.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

#include "common/errors.hpp"
#include "tests/daemon/copy_executor.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::jobs {
namespace {

using namespace std::chrono_literals;
using daemon_test::EventLog;
using daemon_test::GatedCopyExecutor;

// Reads a pipe or FIFO to its end on a thread: when read_now() is called, or after `rescue_after`
// so that a test which finds the scheduler stuck fails instead of hanging.
class LateReader {
 public:
  LateReader(std::function<int()> open_fd, std::chrono::milliseconds rescue_after)
      : thread_([this, open_fd = std::move(open_fd), rescue_after] {
          {
            std::unique_lock lock(mutex_);
            now_.wait_for(lock, rescue_after, [&] { return go_; });
          }
          const int fd = open_fd();
          if (fd < 0) return;
          char buffer[65536];
          for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) content_.append(buffer, static_cast<std::size_t>(n));
          ::close(fd);
        }) {}
  ~LateReader() { content(); }
  void read_now() {
    std::lock_guard lock(mutex_);
    go_ = true;
    now_.notify_all();
  }
  const std::string& content() {
    read_now();
    if (thread_.joinable()) thread_.join();
    return content_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable now_;
  bool go_ = false;
  std::string content_;
  std::thread thread_;  // last: starts after the members it uses
};

// The slowest of `rounds` answers of status and list (all of uid 1000's jobs), in milliseconds.
double slowest_answer_ms(const Scheduler& scheduler, const std::string& id, int rounds) {
  double slowest = 0;
  for (int i = 0; i < rounds; ++i) {
    for (int which = 0; which < 2; ++which) {
      const auto started = std::chrono::steady_clock::now();
      if (which == 0)
        (void)scheduler.status(id, 1000);
      else
        (void)scheduler.list(1000, true);
      slowest = std::max(slowest, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    }
    std::this_thread::sleep_for(10ms);
  }
  return slowest;
}

class SchedulerTest : public ::testing::Test {
 protected:
  UniqueFd file_with(const std::string& name, const std::string& content) {
    const auto path = dir_.path() / name;
    std::ofstream(path) << content;
    return UniqueFd(::open(path.c_str(), O_RDONLY));
  }

  // `faceless_item`'s video makes the executor fail that item.
  SubmitRequest request(uid_t owner, std::size_t videos, nlohmann::json options = nlohmann::json::object(),
                        bool with_outputs = false, int faceless_item = -1) {
    SubmitRequest r;
    r.owner = owner;
    r.audio = {"a.wav", file_with("a.wav", "audio")};
    for (std::size_t i = 0; i < videos; ++i) {
      const auto name = "v" + std::to_string(i) + ".mp4";
      const auto content = static_cast<int>(i) == faceless_item ? "faceless" : "video " + std::to_string(i);
      r.videos.push_back({name, file_with(name, content)});
      if (with_outputs) {
        const auto out = dir_.path() / ("out" + std::to_string(i) + ".mp4");
        r.outputs.emplace_back(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
        r.output_names.push_back(out.string());
      } else {
        r.outputs.emplace_back();
        r.output_names.emplace_back();
      }
    }
    r.options = std::move(options);
    return r;
  }

  std::string wait_finished(Scheduler& scheduler, const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      const std::string state(protocol::to_string(scheduler.status(id, 0).state));
      if (state != "queued" && state != "running") return state;
      std::this_thread::sleep_for(5ms);
    }
    return "timeout";
  }

  test::TempDir dir_;
  std::filesystem::path state_ = dir_.path() / "state";
  GatedCopyExecutor executor_;
};

TEST_F(SchedulerTest, RunsJobsInOrderOneAtATimePerDevice) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto a = scheduler.submit(request(1000, 1)).id;
  const auto b = scheduler.submit(request(1000, 1)).id;
  const auto c = scheduler.submit(request(1000, 1)).id;
  executor_.wait_started(1);
  EXPECT_EQ(scheduler.counts().running, 1u);
  EXPECT_EQ(scheduler.status(c, 1000).position, 2);
  executor_.release(3);
  EXPECT_EQ(wait_finished(scheduler, c), "done");
  EXPECT_EQ((std::vector<std::string>{a + "#0", b + "#0", c + "#0"}), executor_.started());
  EXPECT_EQ(executor_.max_parallel(), 1);
}

TEST_F(SchedulerTest, SlotsArePerDevice) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto cpu = scheduler.submit(request(1000, 1)).id;
  const auto gpu = scheduler.submit(request(1000, 1, {{"generator", "gpu_generator"}})).id;
  executor_.wait_started(2);  // both run although one slot each
  EXPECT_EQ(scheduler.counts().running, 2u);
  executor_.release(2);
  EXPECT_EQ(wait_finished(scheduler, cpu), "done");
  EXPECT_EQ(wait_finished(scheduler, gpu), "done");
}

// Issue 15 item 3: a job whose model has a replica on both devices runs on the least-loaded one;
// two such jobs with one slot per device run at once, one on each.
TEST_F(SchedulerTest, ReplicatedJobsRunAtOnceOneOnEachDevice) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto a = scheduler.submit(request(1000, 1, {{"generator", "replicated"}})).id;
  const auto b = scheduler.submit(request(1000, 1, {{"generator", "replicated"}})).id;
  executor_.wait_started(2);
  EXPECT_EQ(scheduler.counts().running, 2u);
  const auto placed = executor_.placed();
  EXPECT_NE(placed.at(a), placed.at(b));
  executor_.release(2);
  EXPECT_EQ(wait_finished(scheduler, a), "done");
  EXPECT_EQ(wait_finished(scheduler, b), "done");
  EXPECT_EQ(executor_.max_parallel(), 2);
}

// The slots a cluster worker fills (Counts::slots) are every device's own number, auto included.
TEST_F(SchedulerTest, SlotsCountEveryDevicesJobsAlsoWithAuto) {
  {
    Scheduler scheduler(state_, {.max_concurrent_jobs = jobs::kMaxConcurrentJobsAuto}, executor_);
    scheduler.start();
    std::size_t expected = 0;
    for (const auto& device : executor_.devices()) expected += jobs::concurrent_jobs_on(device, jobs::kMaxConcurrentJobsAuto);
    EXPECT_GE(expected, 2u);
    EXPECT_EQ(scheduler.counts().slots, expected);
  }
  Scheduler scheduler(state_, {.max_concurrent_jobs = 3}, executor_);
  scheduler.start();
  EXPECT_EQ(scheduler.counts().slots, 3 * executor_.devices().size());
}

TEST_F(SchedulerTest, AJobGoesToTheLeastLoadedDeviceThatHasItsModels) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 2}, executor_);
  scheduler.start();
  const auto cpu_only = scheduler.submit(request(1000, 1)).id;
  executor_.wait_started(1);
  // cpu has a free slot but one job; gpu has none running: gpu takes it.
  const auto replicated = scheduler.submit(request(1000, 1, {{"generator", "replicated"}})).id;
  executor_.wait_started(2);
  EXPECT_EQ(executor_.placed().at(cpu_only), "cpu");
  EXPECT_EQ(executor_.placed().at(replicated), "gpu");
  // Now both run one job: the next replicated job may go to either, and runs at once.
  const auto third = scheduler.submit(request(1000, 1, {{"generator", "replicated"}})).id;
  executor_.wait_started(3);
  executor_.release(3);
  for (const auto& id : {cpu_only, replicated, third}) EXPECT_EQ(wait_finished(scheduler, id), "done");
}

// Issue 15 item 3: one job's items spread over devices. A free slot of a device that has the job's
// models takes its waiting items; each item runs once; the job ends when its last run ends.
TEST_F(SchedulerTest, AJobsItemsSpreadOverFreeDevices) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 3, {{"generator", "replicated"}}, true)).id;
  executor_.wait_started(2);
  EXPECT_EQ(executor_.max_parallel(), 2);
  EXPECT_EQ(scheduler.counts().running, 1u);  // one job, two runs
  const auto running = scheduler.status(id, 1000);
  EXPECT_EQ(std::count_if(running.items.begin(), running.items.end(),
                          [](const protocol::ItemStatus& item) { return item.state == protocol::ItemState::running; }),
            2);
  executor_.release(3);
  ASSERT_EQ(wait_finished(scheduler, id), "done");
  const auto started = executor_.started();
  EXPECT_EQ(std::set<std::string>(started.begin(), started.end()),
            (std::set<std::string>{id + "#0", id + "#1", id + "#2"}));
  EXPECT_EQ(started.size(), 3u);  // no item ran twice
  std::set<std::string> devices;
  for (const auto& [item, device] : executor_.item_devices()) devices.insert(device);
  EXPECT_EQ(devices, (std::set<std::string>{"cpu", "gpu"}));
  const auto finished = scheduler.status(id, 1000);  // each item says where it ran
  for (std::size_t i = 0; i < finished.items.size(); ++i)
    EXPECT_EQ(finished.items[i].device, executor_.item_devices().at(id + "#" + std::to_string(i)));
  for (int i = 0; i < 3; ++i) {
    std::ifstream out(dir_.path() / ("out" + std::to_string(i) + ".mp4"));
    EXPECT_EQ(std::string((std::istreambuf_iterator<char>(out)), {}), "video " + std::to_string(i));
  }
  const auto log = scheduler.read_log(id, 1000);
  EXPECT_NE(log.find("also runs items on"), std::string::npos) << log;
  EXPECT_EQ(scheduler.counts().running, 0u);
}

// Work goes in submission order: a slot that frees up takes the older job's waiting item before it
// starts the job queued after it.
TEST_F(SchedulerTest, ARunningJobsWaitingItemsGoBeforeALaterJob) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto spread = scheduler.submit(request(1000, 3, {{"generator", "replicated"}})).id;
  executor_.wait_started(2);
  const auto queued = scheduler.submit(request(1000, 1, {{"generator", "replicated"}})).id;
  EXPECT_EQ(scheduler.status(queued, 1000).state, protocol::JobState::queued);
  executor_.release(1);
  executor_.wait_started(3);
  EXPECT_EQ(executor_.started()[2], spread + "#2");
  EXPECT_EQ(scheduler.status(queued, 1000).state, protocol::JobState::queued);
  executor_.release(1);
  executor_.wait_started(4);
  EXPECT_EQ(executor_.started()[3], queued + "#0");
  executor_.release(2);
  EXPECT_EQ(wait_finished(scheduler, spread), "done");
  EXPECT_EQ(wait_finished(scheduler, queued), "done");
}

TEST_F(SchedulerTest, CancelStopsEveryRunOfASpreadJob) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 4, {{"generator", "replicated"}})).id;
  executor_.wait_started(2);
  scheduler.cancel(id, 1000);
  EXPECT_EQ(wait_finished(scheduler, id), "cancelled");
  EXPECT_EQ(executor_.started().size(), 2u);
  const auto job = scheduler.status(id, 1000);
  for (const auto& item : job.items) EXPECT_EQ(item.state, protocol::ItemState::cancelled);
  // Both slots are free again: a new job runs at once.
  const auto next = scheduler.submit(request(1000, 1)).id;
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, next), "done");
}

// A run that cannot start on the other device (its models do not load there) leaves the items to
// the job's first run, and that device is not tried again for the job.
TEST_F(SchedulerTest, ARunRefusedOnAnotherDeviceLeavesTheItemsToTheFirst) {
  Scheduler scheduler(state_, {.max_concurrent_jobs = 1}, executor_);
  scheduler.start();
  const auto gpu_job = scheduler.submit(request(1000, 1, {{"generator", "gpu_generator"}})).id;
  executor_.wait_started(1);
  const auto id = scheduler.submit(request(1000, 3, {{"generator", "replicated"}, {"refuse_device", "gpu"}})).id;
  executor_.wait_started(2);  // on the cpu: the gpu is busy
  scheduler.cancel(gpu_job, 1000);  // the gpu frees up while `id` has items waiting
  EXPECT_EQ(wait_finished(scheduler, gpu_job), "cancelled");
  std::string log;
  for (int i = 0; i < 500 && log.find("cannot run items on gpu") == std::string::npos; ++i) {
    std::this_thread::sleep_for(10ms);
    log = scheduler.read_log(id, 1000);
  }
  EXPECT_NE(log.find("cannot run items on gpu too: no memory left on gpu"), std::string::npos) << log;
  executor_.release(3);
  ASSERT_EQ(wait_finished(scheduler, id), "done");
  for (const auto& [item, device] : executor_.item_devices())
    if (item.rfind(id, 0) == 0) EXPECT_EQ(device, "cpu") << item;
  EXPECT_EQ(executor_.started().size(), 4u);
}

TEST_F(SchedulerTest, BatchGivesOneResultPerItemAndKeepsFailuresPerItem) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  auto log = std::make_shared<EventLog>();
  scheduler.submit(request(1000, 1));  // holds the slot, so the watcher below attaches while queued
  const auto id = scheduler.submit(request(1000, 3, nlohmann::json::object(), false, 1)).id;
  scheduler.watch(id, 1000, log);
  executor_.release(4);
  EXPECT_EQ(wait_finished(scheduler, id), "failed");
  const auto status = scheduler.status(id, 1000);
  EXPECT_EQ(status.items[0].state, protocol::ItemState::done);
  EXPECT_EQ(status.items[1].state, protocol::ItemState::failed);
  EXPECT_NE(status.items[1].error.find("v1.mp4: no face"), std::string::npos);
  EXPECT_EQ(status.items[2].state, protocol::ItemState::done);
  EXPECT_TRUE(status.items[2].in_spool);
  const auto failed = log->wait_for("failed");
  EXPECT_NE(failed["cause"].get<std::string>().find("no face"), std::string::npos);
  const auto names = log->names();
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names[0], "job");
  EXPECT_EQ(names[1], "queued");
  EXPECT_EQ(std::count(names.begin(), names.end(), "item_done"), 2);
  EXPECT_EQ(names.back(), "failed");
  EXPECT_NE(std::find(names.begin(), names.end(), "loading_model"), names.end());
  // The spooled result can be fetched; the log carries the job's lines.
  const auto fd = scheduler.open_output(id, 1000, 2);
  char buffer[32] = {};
  EXPECT_EQ(::read(fd.get(), buffer, sizeof buffer), 7);
  EXPECT_EQ(std::string(buffer), "video 2");
  EXPECT_NE(scheduler.read_log(id, 1000).find("item 2 failed"), std::string::npos);
}

TEST_F(SchedulerTest, OutputFdsReceiveTheResult) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 2, nlohmann::json::object(), true)).id;
  executor_.release(2);
  EXPECT_EQ(wait_finished(scheduler, id), "done");
  for (int i = 0; i < 2; ++i) {
    std::ifstream in(dir_.path() / ("out" + std::to_string(i) + ".mp4"));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(text, "video " + std::to_string(i));
  }
  const auto status = scheduler.status(id, 1000);
  EXPECT_TRUE(status.items[0].delivered);
  EXPECT_THROW(scheduler.open_output(id, 1000, 0), Error);
}

// An output fd that cannot take the result (here: opened read-only; in life: a full disk) fails
// the item with the cause, while the result stays fetchable.
TEST_F(SchedulerTest, AnOutputThatCannotBeWrittenFailsTheItemAndKeepsTheResult) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  auto r = request(1000, 1, nlohmann::json::object(), true);
  r.outputs[0] = file_with("read-only.mp4", "");
  r.output_names[0] = "read-only.mp4";
  const auto id = scheduler.submit(std::move(r)).id;
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, id), "failed");
  const auto status = scheduler.status(id, 1000);
  EXPECT_EQ(status.items[0].state, protocol::ItemState::failed);
  EXPECT_FALSE(status.items[0].delivered);
  EXPECT_TRUE(status.items[0].in_spool);
  EXPECT_NE(status.items[0].error.find("output read-only.mp4"), std::string::npos) << status.items[0].error;
  EXPECT_NE(status.items[0].error.find("heygemctl fetch " + id), std::string::npos) << status.items[0].error;
  const auto fd = scheduler.open_output(id, 1000, 0);
  char buffer[32] = {};
  EXPECT_EQ(::read(fd.get(), buffer, sizeof buffer), 7);
  EXPECT_EQ(std::string(buffer), "video 0");
}

TEST_F(SchedulerTest, CancelQueuedAndRunning) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto running = scheduler.submit(request(1000, 2)).id;
  const auto queued = scheduler.submit(request(1000, 1)).id;
  auto log = std::make_shared<EventLog>();
  scheduler.watch(queued, 1000, log);
  executor_.wait_started(1);
  EXPECT_EQ(scheduler.cancel(queued, 1000).state, protocol::JobState::cancelled);
  log->wait_for("cancelled");
  scheduler.cancel(running, 1000);
  EXPECT_EQ(wait_finished(scheduler, running), "cancelled");
  EXPECT_THROW(scheduler.cancel(running, 1000), Error);
  EXPECT_EQ(executor_.started().size(), 1u);
}

// Issue 15 item 5: a delivery stuck on a client's output (a pipe nobody reads) holds up no other
// client: status and list answer within 100 ms, and a job on the other device runs to its end.
TEST_F(SchedulerTest, AnOutputPipeNobodyReadsStallsNoOtherClient) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  int ends[2];
  ASSERT_EQ(::pipe2(ends, O_CLOEXEC), 0);
  const UniqueFd read_end(ends[0]);
  const int capacity = ::fcntl(ends[0], F_GETPIPE_SZ);
  ASSERT_GT(capacity, 0);
  const std::string result(static_cast<std::size_t>(capacity) * 4, 'r');  // more than the pipe holds
  SubmitRequest stuck;
  stuck.owner = 1000;
  stuck.audio = {"a.wav", file_with("a.wav", "audio")};
  stuck.videos.push_back({"big.mp4", file_with("big.mp4", result)});
  stuck.outputs.emplace_back(ends[1]);
  stuck.output_names.emplace_back("a pipe");
  const auto id = scheduler.submit(std::move(stuck)).id;
  auto log = std::make_shared<EventLog>();
  scheduler.watch(id, 1000, log);
  LateReader reader([&] { return ::dup(read_end.get()); }, 10s);
  executor_.release(1);
  // The delivery has filled the pipe: its writer is blocked now.
  int queued = 0;
  for (int i = 0; i < 2000 && queued < capacity; ++i) {
    std::this_thread::sleep_for(5ms);
    ASSERT_EQ(::ioctl(read_end.get(), FIONREAD, &queued), 0);
  }
  ASSERT_EQ(queued, capacity) << "the delivery never filled the pipe";

  EXPECT_LT(slowest_answer_ms(scheduler, id, 20), 100.0);
  const auto other = scheduler.submit(request(1000, 1, {{"generator", "gpu_generator"}})).id;
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, other), "done");
  EXPECT_EQ(protocol::to_string(scheduler.status(id, 1000).state), "running");  // still stuck meanwhile

  reader.read_now();
  EXPECT_EQ(reader.content().size(), result.size());
  EXPECT_EQ(wait_finished(scheduler, id), "done");
  EXPECT_TRUE(scheduler.status(id, 1000).items[0].delivered);
  log->wait_for("done");
}

// A record save stuck in the state folder (a FIFO where the save's temp file goes: its open
// blocks until someone reads) holds up neither status nor list; the job's watchers hear of it in
// order, once the save is through.
TEST_F(SchedulerTest, ARecordSaveThatBlocksStallsNoOtherClient) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 1)).id;
  auto log = std::make_shared<EventLog>();
  scheduler.watch(id, 1000, log);
  executor_.wait_started(1);
  const auto temp = state_ / "jobs" / (id + ".json.tmp");
  ASSERT_EQ(::mkfifo(temp.c_str(), 0600), 0);
  LateReader reader(
      [&] {
        // Moved aside before the blocked save goes on, so that the next save makes a plain file.
        const auto aside = temp.string() + ".held";
        std::filesystem::rename(temp, aside);
        return ::open(aside.c_str(), O_RDONLY | O_CLOEXEC);
      },
      10s);
  executor_.release(1);
  log->wait_for("item_done");  // announced before the item's record save, which now blocks
  bool item_done = false;
  double slowest_poll_ms = 0;
  for (int i = 0; i < 2000 && !item_done; ++i) {
    const auto asked = std::chrono::steady_clock::now();
    item_done = scheduler.status(id, 1000).items[0].state == protocol::ItemState::done;
    slowest_poll_ms = std::max(slowest_poll_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - asked).count());
    if (!item_done) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(item_done);
  EXPECT_LT(slowest_poll_ms, 100.0);

  EXPECT_LT(slowest_answer_ms(scheduler, id, 20), 100.0);
  // The save was stuck all along: the job could not finish behind it.
  EXPECT_EQ(protocol::to_string(scheduler.status(id, 1000).state), "running");
  const auto heard = log->names();
  EXPECT_EQ(std::count(heard.begin(), heard.end(), "done"), 0);

  EXPECT_NE(reader.content().find(id), std::string::npos);  // the record it was writing
  EXPECT_EQ(wait_finished(scheduler, id), "done");
  log->wait_for("done");
  // The terminal record reached the disk (the failed save in between is forgotten).
  for (int i = 0; i < 2000 && scheduler.storage_problem(); ++i) std::this_thread::sleep_for(5ms);
  EXPECT_FALSE(scheduler.storage_problem());
  std::ifstream record(state_ / "jobs" / (id + ".json"));
  const auto saved = nlohmann::json::parse(record);
  EXPECT_EQ(saved["state"], "done");
}

TEST_F(SchedulerTest, OtherUidsCannotSeeOrTouchAJob) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 1)).id;
  for (auto call : std::vector<std::function<void()>>{
           [&] { scheduler.status(id, 1001); }, [&] { scheduler.cancel(id, 1001); },
           [&] { scheduler.read_log(id, 1001); }, [&] { scheduler.open_output(id, 1001, 0); },
           [&] { scheduler.watch(id, 1001, std::make_shared<EventLog>()); }}) {
    try {
      call();
      ADD_FAILURE() << "another uid reached the job";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::not_found);
      EXPECT_EQ(std::string(e.what()), "no job " + id);
    }
  }
  EXPECT_TRUE(scheduler.list(1001, true).empty());
  EXPECT_EQ(scheduler.list(1000, true).size(), 1u);
  EXPECT_EQ(scheduler.list(0, true).size(), 1u);  // root sees every job
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, id), "done");
}

TEST_F(SchedulerTest, RestartRequeuesRunningAndKeepsQueueOrder) {
  std::string first, second, third;
  {
    Scheduler scheduler(state_, {}, executor_);
    scheduler.start();
    first = scheduler.submit(request(1000, 1)).id;
    second = scheduler.submit(request(1000, 1)).id;
    third = scheduler.submit(request(1000, 1)).id;
    executor_.wait_started(1);
    // A crash is simulated by forcing the record of the running job back on disk as "running"
    // after the scheduler stopped (a clean shutdown would have requeued it itself).
    scheduler.shutdown(0ms);
    EXPECT_EQ(scheduler.status(first, 0).state, protocol::JobState::queued);
  }
  {
    JobStore store(state_);
    auto loaded = store.load_all();
    ASSERT_EQ(loaded.jobs.size(), 3u);
    loaded.jobs[0].state = JobState::running;
    store.save(loaded.jobs[0]);
  }
  Scheduler restarted(state_, {}, executor_);
  const auto report = restarted.start();
  EXPECT_EQ(report.requeued, 1u);
  EXPECT_EQ(report.queued, 3u);
  executor_.release(3);
  EXPECT_EQ(wait_finished(restarted, third), "done");
  const auto started = executor_.started();
  ASSERT_EQ(started.size(), 4u);
  EXPECT_EQ((std::vector<std::string>{first + "#0", second + "#0", third + "#0"}),
            std::vector<std::string>(started.begin() + 1, started.end()));
  EXPECT_EQ(restarted.status(first, 0).attempts, 2);
}

TEST_F(SchedulerTest, OrphanSpoolFoldersAreRemovedAtStart) {
  Spool(state_).create_job_dir("abcdefabcdef");
  Scheduler scheduler(state_, {}, executor_);
  EXPECT_EQ(scheduler.start().orphans_removed, 1u);
  EXPECT_FALSE(std::filesystem::exists(state_ / "spool" / "abcdefabcdef"));
}

TEST_F(SchedulerTest, StartFailureFailsEveryItemWithTheCause) {
  Scheduler scheduler(state_, {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request(1000, 2, {{"generator", "nothing"}})).id;
  EXPECT_EQ(wait_finished(scheduler, id), "failed");
  const auto status = scheduler.status(id, 1000);
  EXPECT_EQ(status.error, "no model named nothing");
  EXPECT_EQ(status.items[1].error, "no model named nothing");
}

TEST_F(SchedulerTest, RetentionRemovesOldFinishedJobsOnly) {
  Scheduler scheduler(state_, {.retention_max_age = 0ms}, executor_);
  scheduler.start();
  const auto done = scheduler.submit(request(1000, 1)).id;
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, done), "done");
  const auto queued = scheduler.submit(request(1000, 1)).id;
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(scheduler.cleanup().removed_jobs, 1u);
  EXPECT_THROW(scheduler.status(done, 0), Error);
  EXPECT_FALSE(std::filesystem::exists(state_ / "spool" / done));
  EXPECT_FALSE(std::filesystem::exists(state_ / "jobs" / (done + ".json")));
  EXPECT_NE(scheduler.status(queued, 0).state, protocol::JobState::done);
  executor_.release(1);
  EXPECT_EQ(wait_finished(scheduler, queued), "done");
}

TEST_F(SchedulerTest, RetentionBoundsTheSpoolSize) {
  Scheduler scheduler(state_, {.retention_max_bytes = 1}, executor_);
  scheduler.start();
  const auto a = scheduler.submit(request(1000, 1)).id;
  const auto b = scheduler.submit(request(1000, 1)).id;
  executor_.release(2);
  EXPECT_EQ(wait_finished(scheduler, b), "done");
  const auto report = scheduler.cleanup();
  EXPECT_EQ(report.removed_jobs, 2u);
  EXPECT_TRUE(scheduler.list(0, true).empty());
  (void)a;
}

}  // namespace
}  // namespace heygem::jobs
