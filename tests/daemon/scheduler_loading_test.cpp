// The loading_model stage (issue 5): a run that waits for a lazy model load tells every watcher,
// also one that attaches after the load began (an attached `heygemctl submit` watches only once its
// job exists, and a free slot starts the job at once), and nobody after the load is over.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include "daemon/jobs/scheduler.hpp"
#include "tests/daemon/copy_executor.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::jobs {
namespace {

using namespace std::chrono_literals;
using daemon_test::EventLog;

// start() announces a load of "slow_model" and holds there until the test ends the load, as the
// real executor does while the model registry loads a model that is not preloaded; the item then
// holds until the test lets it finish.
class LoadingExecutor : public JobExecutor {
 public:
  std::vector<std::string> devices() const override { return {"cpu"}; }
  std::vector<std::string> devices_for(const Job&) const override { return {"cpu"}; }

  std::unique_ptr<JobRun> start(const Job&, const Spool&, const RunControl& control, const std::string&) override {
    control.loading_model("slow_model");
    wait_until("loading", loaded_);
    return std::make_unique<GatedRun>(*this, control);
  }

  void wait_loading() { wait_for(loading_); }
  void finish_load() { set(loaded_); }
  void wait_rendering() { wait_for(rendering_); }
  void finish_item() { set(item_released_); }

 private:
  class GatedRun : public JobRun {
   public:
    GatedRun(LoadingExecutor& owner, RunControl control) : owner_(owner), control_(std::move(control)) {}
    std::string model_name() const override { return "slow_model"; }
    ItemOutcome run_item(std::size_t, const std::filesystem::path& output) override {
      control_.progress({"render", 0, 1, 0, 0});
      owner_.wait_until("rendering", owner_.item_released_);
      std::ofstream(output) << "rendered";
      return {1, 0, 0.01, 100.0};
    }

   private:
    LoadingExecutor& owner_;
    RunControl control_;
  };

  // Marks `phase` reached, then blocks until the test sets `released`.
  void wait_until(const std::string& phase, const bool& released) {
    std::unique_lock lock(mutex_);
    (phase == "loading" ? loading_ : rendering_) = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return released; });
  }
  void wait_for(const bool& reached) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, 10s, [&] { return reached; }));
  }
  void set(bool& flag) {
    std::lock_guard lock(mutex_);
    flag = true;
    changed_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  bool loading_ = false, loaded_ = false, rendering_ = false, item_released_ = false;
};

class SchedulerLoadingTest : public ::testing::Test {
 protected:
  SubmitRequest request() {
    SubmitRequest r;
    r.owner = 1000;
    r.audio = input("a.wav");
    r.videos.push_back(input("v.mp4"));
    r.outputs.emplace_back();
    r.output_names.emplace_back();
    return r;
  }

  SubmitInput input(const std::string& name) {
    const auto path = dir_.path() / name;
    std::ofstream(path) << name;
    return {name, UniqueFd(::open(path.c_str(), O_RDONLY))};
  }

  std::string wait_finished(Scheduler& scheduler, const std::string& id) {
    for (int i = 0; i < 2000; ++i) {
      const std::string state(protocol::to_string(scheduler.status(id, 1000).state));
      if (state != "queued" && state != "running") return state;
      std::this_thread::sleep_for(5ms);
    }
    return "timeout";
  }

  test::TempDir dir_;
  LoadingExecutor executor_;
};

TEST_F(SchedulerLoadingTest, AWatcherAttachingDuringTheLoadIsToldOnceAndNobodyAfterIt) {
  Scheduler scheduler(dir_.path() / "state", {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request()).id;
  executor_.wait_loading();  // the event went out before anyone watched

  auto during = std::make_shared<EventLog>();
  scheduler.watch(id, 1000, during);
  const auto loading = during->wait_for("loading_model");
  EXPECT_EQ(loading["model"], "slow_model");

  executor_.finish_load();
  executor_.finish_item();
  EXPECT_EQ(wait_finished(scheduler, id), "done");
  during->wait_for("done");  // watchers hear it just after the board shows it (fan-out is outside the lock)
  const auto names = during->names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "loading_model"), 1);
  EXPECT_EQ(names.front(), "job");
  EXPECT_LT(std::find(names.begin(), names.end(), "loading_model"), std::find(names.begin(), names.end(), "running"));
  EXPECT_EQ(names.back(), "done");
  EXPECT_NE(scheduler.read_log(id, 1000).find("loading model slow_model"), std::string::npos);
}

TEST_F(SchedulerLoadingTest, AWatcherAttachingAfterTheLoadIsNotToldOfIt) {
  Scheduler scheduler(dir_.path() / "state", {}, executor_);
  scheduler.start();
  const auto id = scheduler.submit(request()).id;
  executor_.wait_loading();
  executor_.finish_load();
  executor_.wait_rendering();  // the job runs on: the load is over
  auto after = std::make_shared<EventLog>();
  scheduler.watch(id, 1000, after);
  EXPECT_EQ(after->wait_for("running")["stage"], "render");
  executor_.finish_item();
  after->wait_for("done");
  const auto names = after->names();
  EXPECT_EQ(std::count(names.begin(), names.end(), "loading_model"), 0);
}

}  // namespace
}  // namespace heygem::jobs
