#pragma once
// Test helpers for the scheduler and server suites: an executor that copies each video to its
// output (failing a video whose content is "faceless") and can hold items until the test lets go,
// and an EventSink that records what it gets. The real executor (pipeline + models) is exercised
// by the integration tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>

#include "common/errors.hpp"
#include "daemon/jobs/scheduler.hpp"

namespace heygem::daemon_test {

using namespace heygem::jobs;

using namespace std::chrono_literals;

class GatedCopyExecutor : public JobExecutor {
 public:
  std::vector<std::string> devices() const override { return {"cpu", "gpu"}; }
  // The generator named in the options picks the devices, as the real executor's config does:
  // "replicated" has a replica on both.
  std::vector<std::string> devices_for(const Job& job) const override {
    const auto generator = job.options.value("generator", "");
    if (generator == "replicated") return {"cpu", "gpu"};
    return {generator == "gpu_generator" ? "gpu" : "cpu"};
  }

  std::unique_ptr<JobRun> start(const Job& job, const Spool& spool, const RunControl& control,
                                const std::string& device) override {
    if (job.options.value("generator", "") == "nothing") throw Error(ErrorCode::not_found, "no model named nothing");
    // "refuse_device": a device whose models fail to load for this job
    if (job.options.value("refuse_device", "") == device)
      throw Error(ErrorCode::resource, "no memory left on " + device);
    {
      std::lock_guard lock(mutex_);
      placed_.emplace(job.id, device);
    }
    control.loading_model("copy");
    return std::make_unique<Run>(*this, job, spool, control, device);
  }

  // Lets `count` more items run to completion.
  void release(int count) {
    std::lock_guard lock(mutex_);
    permits_ += count;
    changed_.notify_all();
  }
  void wait_started(std::size_t count) {
    std::unique_lock lock(mutex_);
    ASSERT_TRUE(changed_.wait_for(lock, 10s, [&] { return started_.size() >= count; })) << started_.size();
  }
  std::vector<std::string> started() {
    std::lock_guard lock(mutex_);
    return started_;
  }
  int max_parallel() {
    std::lock_guard lock(mutex_);
    return max_parallel_;
  }
  // The device each job's first run was started on.
  std::map<std::string, std::string> placed() {
    std::lock_guard lock(mutex_);
    return placed_;
  }
  // The device each started item ("id#item") ran on.
  std::map<std::string, std::string> item_devices() {
    std::lock_guard lock(mutex_);
    return item_devices_;
  }

 private:
  class Run : public JobRun {
   public:
    Run(GatedCopyExecutor& owner, Job job, const Spool& spool, RunControl control, std::string device)
        : owner_(owner), job_(std::move(job)), spool_(spool), control_(std::move(control)), device_(std::move(device)) {}
    std::string model_name() const override { return "copy"; }
    ItemOutcome run_item(std::size_t item, const std::filesystem::path& output) override {
      {
        std::unique_lock lock(owner_.mutex_);
        owner_.started_.push_back(job_.id + "#" + std::to_string(item));
        owner_.item_devices_[job_.id + "#" + std::to_string(item)] = device_;
        owner_.max_parallel_ = std::max(owner_.max_parallel_, ++owner_.running_);
        owner_.changed_.notify_all();
        while (owner_.permits_ == 0 && !control_.cancelled()) owner_.changed_.wait_for(lock, 5ms);
        --owner_.running_;
        if (control_.cancelled()) throw Error(ErrorCode::cancelled, "cancelled");
        --owner_.permits_;
      }
      std::ifstream in(spool_.video_path(job_.id, item));
      const std::string content((std::istreambuf_iterator<char>(in)), {});
      if (content == "faceless")
        throw Error(ErrorCode::invalid_input, "video " + job_.items[item].video_name + ": no face");
      control_.progress({"render", 5, 10, 25.0, 0.2});
      std::filesystem::copy_file(spool_.video_path(job_.id, item), output);
      return {10, 1, 0.4, 25.0};
    }

   private:
    GatedCopyExecutor& owner_;
    Job job_;
    const Spool& spool_;
    RunControl control_;
    std::string device_;
  };

  std::mutex mutex_;
  std::condition_variable changed_;
  int permits_ = 0, running_ = 0, max_parallel_ = 0;
  std::vector<std::string> started_;
  std::map<std::string, std::string> placed_;
  std::map<std::string, std::string> item_devices_;
};

class EventLog : public EventSink {
 public:
  void deliver(const protocol::Response& message) override {
    std::lock_guard lock(mutex_);
    auto json = protocol::to_json(message);
    if (json["type"] == "job") json["event"] = "job";
    events_.push_back(json);
    changed_.notify_all();
  }
  // Waits for an event named `name`; returns it.
  nlohmann::json wait_for(const std::string& name) {
    std::unique_lock lock(mutex_);
    nlohmann::json found;
    const bool ok = changed_.wait_for(lock, 10s, [&] {
      for (const auto& e : events_)
        if (e["event"] == name) {
          found = e;
          return true;
        }
      return false;
    });
    EXPECT_TRUE(ok) << "no " << name << " event";
    return found;
  }
  std::vector<std::string> names() {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& e : events_) out.push_back(e["event"]);
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<nlohmann::json> events_;
};

}  // namespace heygem::daemon_test
