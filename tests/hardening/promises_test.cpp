// The promises heygemctl(1) makes about the user's files, tried as a user would: an output never
// replaces an input, and an output path holds the complete result or nothing, whatever happens to
// the job, the daemon or heygemctl. The man page's cron lines run as written, three nights in a row.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <ctime>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/hardening/daemon_harness.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& file, const std::string& bytes) { std::ofstream(file, std::ios::binary) << bytes; }

// Names in `folder` other than `allowed`: leftovers such as hidden temporary files.
std::vector<std::string> other_entries(const fs::path& folder, const std::set<std::string>& allowed) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder))
    if (!allowed.count(entry.path().filename().string())) names.push_back(entry.path().filename().string());
  return names;
}

std::optional<protocol::JobStatus> find_job(const Daemon& daemon, const std::string& id) {
  for (auto& job : daemon.jobs())
    if (job.job_id == id) return job;
  return std::nullopt;
}

// Waits until the daemon has a running job; its id.
std::string wait_for_running_job(const Daemon& daemon, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& job : daemon.jobs())
      if (job.state == protocol::JobState::running) return job.job_id;
    std::this_thread::sleep_for(50ms);
  }
  return {};
}

// heygemctl started in the background (stdout/stderr to files), for the tests that kill things.
struct BackgroundClient {
  pid_t pid = -1;
  fs::path out, err;
  BackgroundClient(const Daemon& daemon, const std::vector<std::string>& args, const fs::path& folder)
      : out(folder / "client.out"), err(folder / "client.err") {
    std::vector<std::string> argv{heygemctl_binary().string(), "--socket", daemon.socket().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> raw;
    for (auto& arg : argv) raw.push_back(arg.data());
    raw.push_back(nullptr);
    pid = ::fork();
    if (pid == 0) {
      const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(o, 1);
      ::dup2(e, 2);
      ::execv(raw[0], raw.data());
      ::_exit(127);
    }
  }
  int wait() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  ~BackgroundClient() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait();
    }
  }
};

// A clip long enough that the test can act while its job runs.
fs::path long_clip(const Daemon& daemon) {
  const fs::path clip = daemon.work() / "long.mp4";
  if (!fs::exists(clip)) make_tiny_clip(clip, 64, 2.0);
  return clip;
}

const std::vector<std::string> kFixedBox = {"--box", "0,32,0,32"};

// Both models load when a job first needs them: these tests run few jobs, most with a fixed box,
// and a preloaded RetinaFace's warm-up would cost each daemon start tens of CPU seconds.
DaemonOptions lazy_models() {
  DaemonOptions options;
  options.models_section =
      "  entries:\n"
      "    - {name: wav2lip, kind: wav2lip, weights: \"\", device: cpu, precision: float32, preload: false}\n"
      "    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cpu,"
      " precision: float32, preload: false}\n";
  return options;
}

std::vector<std::string> submit(const fs::path& audio, const std::vector<fs::path>& videos, std::vector<std::string> extra) {
  std::vector<std::string> args{"submit"};
  args.insert(args.end(), kFixedBox.begin(), kFixedBox.end());
  args.insert(args.end(), {"--audio", audio.string()});
  for (const auto& video : videos) args.push_back(video.string());
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(Promises, AnOutputThatIsAnInputIsRefusedAndNothingIsTouched) {
  Daemon daemon(lazy_models());
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 1.0);
  const fs::path self = daemon.work() / "self.mp4";
  fs::copy_file(clip, self);
  const std::string before = read_bytes(self);
  fs::create_hard_link(self, daemon.work() / "hard.mp4");
  fs::create_symlink(self, daemon.work() / "soft.mp4");

  // The video as -o, by its own name, a hard link and a symlink; the audio as -o.
  for (const char* output : {"self.mp4", "hard.mp4", "soft.mp4"}) {
    const auto result = daemon.ctl(submit(clip, {self}, {"-f", "-o", (daemon.work() / output).string()}));
    EXPECT_EQ(result.exit_code, 7) << output << ": " << result.out << result.err;
    EXPECT_NE(result.err.find("is the same file as the video"), std::string::npos) << result.err;
  }
  const auto audio_as_output = daemon.ctl(submit(self, {clip}, {"-f", "-o", self.string()}));
  EXPECT_EQ(audio_as_output.exit_code, 7) << audio_as_output.err;
  EXPECT_NE(audio_as_output.err.find("is the same file as the audio"), std::string::npos) << audio_as_output.err;
  EXPECT_EQ(read_bytes(self), before) << "an input was changed";
  EXPECT_TRUE(daemon.jobs().empty()) << "a refused submit reached the daemon";
  EXPECT_TRUE(fs::is_symlink(daemon.work() / "soft.mp4"));
}

TEST(Promises, ACancelledOrFailedJobLeavesNothingAtTheOutput) {
  Daemon daemon(lazy_models());
  const fs::path clip = long_clip(daemon);
  TempDir out;
  const fs::path output = out.path() / "cancelled.mp4";
  BackgroundClient client(daemon, submit(clip, {clip}, {"-o", output.string()}), daemon.work());
  const std::string id = wait_for_running_job(daemon, 60s);
  ASSERT_FALSE(id.empty()) << daemon.log_text();
  EXPECT_FALSE(fs::exists(output)) << "the output is visible while the job runs";
  EXPECT_EQ(daemon.ctl({"cancel", id}).exit_code, 0);
  EXPECT_EQ(client.wait(), 4) << read_bytes(client.err);
  EXPECT_EQ(other_entries(out.path(), {}), std::vector<std::string>{}) << "a cancelled job left files";

  // A job that fails (an undecodable video) leaves nothing either, and keeps an older file with --force.
  const fs::path broken = daemon.work() / "broken.mp4";
  write_bytes(broken, std::string(4096, 'x'));
  const auto failed = daemon.ctl(submit(clip, {broken}, {"-o", output.string()}));
  EXPECT_NE(failed.exit_code, 0);
  EXPECT_FALSE(fs::exists(output));
  write_bytes(output, "last good result");
  const auto failed_forced = daemon.ctl(submit(clip, {broken}, {"-f", "-o", output.string()}));
  EXPECT_NE(failed_forced.exit_code, 0);
  EXPECT_EQ(read_bytes(output), "last good result");
  EXPECT_EQ(other_entries(out.path(), {"cancelled.mp4"}), std::vector<std::string>{});
}

// An attached submit whose job is running, for the tests that then kill the daemon or the client.
class PromisesWithARunningJob : public ::testing::Test {
 protected:
  void SetUp() override {
    clip_ = long_clip(daemon_);
    client_.emplace(daemon_, submit(clip_, {clip_}, {"-o", output_.string()}), daemon_.work());
    id_ = wait_for_running_job(daemon_, 60s);
    ASSERT_FALSE(id_.empty()) << daemon_.log_text();
  }

  Daemon daemon_{lazy_models()};
  TempDir out_;
  fs::path output_ = out_.path() / "out.mp4";
  fs::path clip_;
  std::optional<BackgroundClient> client_;
  std::string id_;
};

TEST_F(PromisesWithARunningJob, AClientThatLosesTheDaemonSaysTheJobRunsAgainAndLeavesNoFile) {
  daemon_.kill9();
  EXPECT_EQ(client_->wait(), 3);
  const std::string message = read_bytes(client_->err);
  EXPECT_NE(message.find("job " + id_ + " is kept by heygemd and runs again"), std::string::npos) << message;
  EXPECT_NE(message.find("heygemctl fetch " + id_), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(output_)) << "a 0-byte or partial file was left at -o";

  daemon_.start();
  EXPECT_EQ(daemon_.ctl({"wait", id_}).exit_code, 0);
  EXPECT_FALSE(fs::exists(output_)) << "the daemon wrote to the user's path after a restart";
  const auto fetched = daemon_.ctl({"fetch", id_, "-o", output_.string()});
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_TRUE(is_valid_video(output_));
  EXPECT_EQ(other_entries(out_.path(), {"out.mp4"}), std::vector<std::string>{});
}

TEST_F(PromisesWithARunningJob, AKilledClientLeavesNoFileAndTheDaemonServesOn) {
  ::kill(client_->pid, SIGKILL);
  client_->wait();
  EXPECT_EQ(daemon_.ctl({"wait", id_}).exit_code, 0);
  EXPECT_EQ(other_entries(out_.path(), {}), std::vector<std::string>{}) << "a killed client left files";
  EXPECT_TRUE(daemon_.ping());
}

TEST(Promises, ABatchIntoANewFolderCreatesIt) {
  Daemon daemon(lazy_models());
  const fs::path a = daemon.work() / "a.mp4", b = daemon.work() / "b.mp4";
  make_tiny_clip(a, 48, 1.0);
  fs::copy_file(a, b);
  const fs::path folder = daemon.work() / "new-folder";
  const auto result = daemon.ctl(submit(a, {a, b}, {"-o", folder.string() + "/"}));
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(is_valid_video(folder / "a.lipsync.mp4"));
  EXPECT_TRUE(is_valid_video(folder / "b.lipsync.mp4"));
  const auto missing_parent = daemon.ctl(submit(a, {a, b}, {"-o", (daemon.work() / "no" / "such").string() + "/"}));
  EXPECT_EQ(missing_parent.exit_code, 7);
  EXPECT_NE(missing_parent.err.find((daemon.work() / "no").string() + " does not exist"), std::string::npos)
      << missing_parent.err;
}

// The cron lines of heygemctl(1)'s EXAMPLES, as a shell runs them (the schedule fields cut off).
std::vector<std::string> man_page_cron_commands() {
  std::ifstream page(std::string(HEYGEM_SOURCE_DIR) + "/man/heygemctl.1");
  std::vector<std::string> commands;
  const std::regex cron_line(R"(^(\S+\s+){5}(heygemctl .*|\S+=.*)$)");
  std::string line;
  while (std::getline(page, line)) {
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '-') continue;  // roff's \- is '-'
      text += line[i];
    }
    std::smatch match;
    if (std::regex_match(text, match, cron_line) && std::isdigit(static_cast<unsigned char>(text[0])))
      commands.push_back(match[2]);
  }
  return commands;
}

TEST(Promises, TheManPageCronLinesRunThreeNightsInARowOneFailing) {
  const auto commands = man_page_cron_commands();
  ASSERT_EQ(commands.size(), 2u) << "heygemctl(1) EXAMPLES should hold two cron lines";
  Daemon daemon(lazy_models());
  TempDir home;
  const auto audio = run_command({"/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                                  "sine=frequency=300:duration=1", (home.path() / "a.wav").string()});
  ASSERT_EQ(audio.exit_code, 0) << audio.err;
  const fs::path video = home.path() / "v.mp4";
  make_tiny_clip(video, 48, 1.0);
  const std::string good_video = read_bytes(video);
  const std::string path = heygemctl_binary().parent_path().string() + ":/usr/bin:/bin";
  auto night = [&](const std::string& command) {
    return run_command({"/usr/bin/env", "-i", "PATH=" + path, "HEYGEM_SOCKET=" + daemon.socket().string(), "/bin/sh",
                        "-c", "cd " + home.path().string() + " && " + command});
  };
  for (const auto& command : commands) {
    SCOPED_TRACE(command);
    fs::remove(home.path() / "out.mp4");
    write_bytes(video, good_video);
    const auto first = night(command);
    EXPECT_EQ(first.exit_code, 0) << first.out << first.err;
    EXPECT_EQ(first.out + first.err, "") << "--quiet printed something";
    ASSERT_TRUE(is_valid_video(home.path() / "out.mp4"));
    const std::string first_result = read_bytes(home.path() / "out.mp4");

    write_bytes(video, "not a video");  // the second night's input is broken
    const auto second = night(command);
    EXPECT_NE(second.exit_code, 0) << "a broken input went unnoticed";
    EXPECT_NE(second.err, "") << "a failing night must say why (cron mails it)";
    EXPECT_EQ(read_bytes(home.path() / "out.mp4"), first_result) << "a failed night changed the last good result";

    write_bytes(video, good_video);
    const auto third = night(command);
    EXPECT_EQ(third.exit_code, 0) << third.out << third.err;
    EXPECT_TRUE(is_valid_video(home.path() / "out.mp4"));
    EXPECT_EQ(other_entries(home.path(), {"a.wav", "v.mp4", "out.mp4"}), std::vector<std::string>{});
  }
}

// ---------------------------------------------------------------------------------------------
// One validation: --check-config, start and reload refuse the same configs, exit 2, and name the
// file and the entry's line.

struct BadConfig {
  const char* what;
  std::string entry;        // one models.entries line
  std::string expected;     // part of the message
};

std::string config_text(const fs::path& work, const std::string& entry) {
  // The entry is on line 10 of this text (the line the message must name).
  return "socket:\n  path: " + (work / "other.sock").string() + "\n" +  // 1-2
         "state_dir: " + (work / "other-state").string() + "\n" +       // 3
         "models:\n" +                                                    // 4
         "  directory: " + (shared_root() / "models").string() + "\n" +   // 5
         "  default_generator: wav2lip\n" +                               // 6
         "  default_detector: face\n" +                                   // 7
         "  entries:\n" +                                                 // 8
         "    - {name: wav2lip, kind: wav2lip, weights: \"\", device: cpu, precision: float32, preload: false}\n" +  // 9
         "    " + entry + "\n";                                           // 10
}

std::vector<BadConfig> bad_configs() {
  return {
      {"a detector without weights", "- {name: face, kind: retinaface, weights: \"\", preload: false}", "needs a weights file"},
      {"float16 on the CPU", "- {name: face, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cpu, precision: float16, preload: false}",
       "on cpu only float32"},
      {"a missing weights file", "- {name: face, kind: retinaface, weights: no-such-weights.pth, preload: false}",
       "weights file not found"},
      {"cuda on a CPU-only build", "- {name: face, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cuda, preload: false}",
       "CPU-only build"},
  };
}

TEST(Promises, CheckConfigStartAndReloadRefuseTheSameConfigsNamingFileAndLine) {
  Daemon daemon(lazy_models());  // for reload
  const std::string good_config = read_bytes(daemon.config_file());
  for (const auto& bad : bad_configs()) {
    SCOPED_TRACE(bad.what);
    const fs::path file = daemon.work() / "bad.yaml";
    write_bytes(file, config_text(daemon.work(), bad.entry));
    const auto checked = run_command({heygemd_binary().string(), "--config", file.string(), "--check-config"});
    if (std::string(bad.what) == "cuda on a CPU-only build" && checked.exit_code == 0)
      continue;  // a CUDA build on a machine with a GPU: a valid config there
    EXPECT_EQ(checked.exit_code, 2) << checked.out << checked.err;
    EXPECT_NE(checked.err.find(file.string() + ": line 10"), std::string::npos) << checked.err;
    EXPECT_NE(checked.err.find(bad.expected), std::string::npos) << checked.err;
    EXPECT_EQ(checked.out.find("config OK"), std::string::npos) << checked.out;

    const auto started = run_command({"/usr/bin/timeout", "60", heygemd_binary().string(), "--config", file.string()});
    EXPECT_EQ(started.exit_code, 2) << started.out << started.err;
    EXPECT_NE(started.err.find(file.string() + ": line 10"), std::string::npos) << started.err;
    EXPECT_NE(started.err.find(bad.expected), std::string::npos) << started.err;

    // The running daemon's own config file gets the bad entry: reload refuses it the same way.
    std::string reloaded_config = good_config;
    reloaded_config += "    " + bad.entry + "\n";
    write_bytes(daemon.config_file(), reloaded_config);
    const auto reload = daemon.ctl({"reload"});
    EXPECT_EQ(reload.exit_code, 2) << reload.out << reload.err;
    EXPECT_NE(reload.err.find(daemon.config_file().string() + ": line "), std::string::npos) << reload.err;
    EXPECT_NE(reload.err.find(bad.expected), std::string::npos) << reload.err;
    write_bytes(daemon.config_file(), good_config);
    EXPECT_TRUE(daemon.ping());
  }
}

// ---------------------------------------------------------------------------------------------
TEST(Promises, ExitCodesAreTheDocumentedOnes) {
  Daemon daemon(lazy_models());
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 1.0);
  const auto unknown_generator = daemon.ctl(submit(clip, {clip}, {"--generator", "nosuch", "-o", (daemon.work() / "a.mp4").string()}));
  EXPECT_EQ(unknown_generator.exit_code, 2) << unknown_generator.err;
  EXPECT_NE(unknown_generator.err.find("nosuch"), std::string::npos) << unknown_generator.err;
  const auto wrong_kind = daemon.ctl(submit(clip, {clip}, {"--detector", "wav2lip", "-o", (daemon.work() / "b.mp4").string()}));
  EXPECT_EQ(wrong_kind.exit_code, 2) << wrong_kind.err;
  EXPECT_FALSE(fs::exists(daemon.work() / "a.mp4"));
  EXPECT_FALSE(fs::exists(daemon.work() / "b.mp4"));
  const auto unknown_command = daemon.ctl({"frobnicate"});
  EXPECT_EQ(unknown_command.exit_code, 2);
  EXPECT_NE(unknown_command.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown_command.err;
  const auto unknown_model = daemon.ctl({"models", "load", "nosuch"});
  EXPECT_EQ(unknown_model.exit_code, 2) << unknown_model.err;
}

// ---------------------------------------------------------------------------------------------
// The heartbeat never runs inside a job, also while the job loads a lazy model.
std::optional<std::chrono::system_clock::time_point> log_time(const std::string& line, std::size_t at) {
  std::tm tm{};
  int millis = 0;
  if (std::sscanf(line.c_str() + at, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &millis) != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_isdst = -1;
  return std::chrono::system_clock::from_time_t(std::mktime(&tm)) + std::chrono::milliseconds(millis);
}

TEST(Promises, TheHeartbeatNeverRunsInsideAJobThatLoadsALazyModel) {
  DaemonOptions options;
  options.log_level = "debug";
  options.models_section =
      "  heartbeat_interval: 1s\n  entries:\n"
      "    - {name: wav2lip, kind: wav2lip, weights: \"\", device: cpu, precision: float32, preload: false}\n"
      "    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cpu,"
      " precision: float32, preload: false}\n";
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 96, 4.0);
  const fs::path output = daemon.work() / "out.mp4";
  std::vector<std::string> args{"submit", "--audio", clip.string(), clip.string(), "-o", output.string()};  // detection
  const auto first = daemon.ctl(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::this_thread::sleep_for(2500ms);  // heartbeats of the now resident models between the jobs
  fs::remove(output);
  const auto second = daemon.ctl(args);
  ASSERT_EQ(second.exit_code, 0) << second.err;

  // The jobs' windows: from the first thing a job does on the device (loading a model, or its
  // models line) to its end, in the jobs' own logs.
  std::vector<std::pair<std::chrono::system_clock::time_point, std::chrono::system_clock::time_point>> jobs;
  for (const auto& job : daemon.jobs()) {
    std::ifstream log(daemon.state_dir() / "spool" / job.job_id / "job.log");
    std::optional<std::chrono::system_clock::time_point> begin, end;
    for (std::string line; std::getline(log, line);) {
      const auto at = log_time(line, 0);
      if (!at) continue;
      if (!begin && (line.find("loading model") != std::string::npos || line.find("models: generator") != std::string::npos))
        begin = at;
      if (line.find(" done") != std::string::npos || line.find("info done") != std::string::npos) end = at;
    }
    ASSERT_TRUE(begin && end) << "job " << job.job_id << " log lacks its start or end";
    jobs.emplace_back(*begin, *end);
  }
  ASSERT_EQ(jobs.size(), 2u);
  // The heartbeats: from "probing" to its summary line, in the daemon's log.
  std::istringstream log(daemon.log_text());
  std::optional<std::chrono::system_clock::time_point> probing;
  int heartbeats = 0;
  for (std::string line; std::getline(log, line);) {
    if (line.find("heartbeat cpu: probing") != std::string::npos) {
      probing = log_time(line, 1);
      continue;
    }
    if (!probing || line.find("heartbeat cpu: ") == std::string::npos || line.find(" ok") == std::string::npos) continue;
    const auto finished = log_time(line, 1);
    ASSERT_TRUE(finished);
    ++heartbeats;
    for (const auto& [begin, end] : jobs)
      EXPECT_TRUE(*finished < begin || *probing > end)
          << "a heartbeat ran inside a job: " << line << "\n" << daemon.log_text();
    probing.reset();
  }
  EXPECT_GT(heartbeats, 0) << "no heartbeat ran at all between the jobs: the test proves nothing\n" << daemon.log_text();
}

// ---------------------------------------------------------------------------------------------
// While heygemd loads its models at start, it answers: ping says so, a job queues and says what it
// waits for, reload is refused, SIGHUP does not kill it, and --timeout bounds a wait.
TEST(Promises, ADaemonThatIsLoadingItsModelsAnswersAtOnce) {
  DaemonOptions options;
  options.wait_until_ready = false;
  Daemon daemon(options);
  const auto ping = daemon.ctl({"--timeout", "5", "ping"});
  EXPECT_EQ(ping.exit_code, 0) << ping.err;
  EXPECT_NE(ping.out.find("loading models ("), std::string::npos) << ping.out;
  const auto json_ping = daemon.ctl({"--json", "ping"});
  EXPECT_NE(json_ping.out.find("\"state\":\"loading\""), std::string::npos) << json_ping.out;
  const auto reload = daemon.ctl({"reload"});
  EXPECT_EQ(reload.exit_code, 8) << reload.err;
  EXPECT_NE(reload.err.find("still loading its models"), std::string::npos) << reload.err;
  ::kill(daemon.pid(), SIGHUP);
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(daemon.ping()) << "SIGHUP during start-up killed heygemd\n" << daemon.log_text();

  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 1.0);
  const auto detached = daemon.ctl(submit(clip, {clip}, {"--detach"}));
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  const std::string id = detached.out.substr(0, 12);
  const auto timed_out = daemon.ctl({"--timeout", "0.5", "wait", id});
  const bool was_ready = daemon.ctl({"ping"}).out.find("loading") == std::string::npos;
  if (!was_ready) {
    EXPECT_EQ(timed_out.exit_code, 3) << timed_out.err;
    EXPECT_NE(timed_out.err.find("did not answer within 0.5"), std::string::npos) << timed_out.err;
  }
  const auto watched = daemon.ctl({"watch", id});  // off a terminal: plain lines
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  if (!was_ready)
    EXPECT_NE(watched.out.find("loading model wav2lip,retinaface"), std::string::npos) << watched.out;
  const auto ready = daemon.ctl({"--json", "ping"});
  EXPECT_NE(ready.out.find("\"state\":\"ready\""), std::string::npos) << ready.out;
}

// ---------------------------------------------------------------------------------------------
TEST(Promises, ModelsShowsHeartbeatKeepAliveMemoryAndLoadsAndUnloads) {
  DaemonOptions options;
  options.models_section =
      "  heartbeat_interval: 1s\n  entries:\n"
      "    - {name: wav2lip, kind: wav2lip, weights: \"\", device: cpu, precision: float32, preload: true}\n"
      "    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cpu,"
      " precision: float32, preload: false, keep_alive: 10s}\n";
  Daemon daemon(options);
  // The first heartbeat comes one interval after READY; a loaded machine may take longer.
  auto table = daemon.ctl({"models"});
  for (const auto deadline = std::chrono::steady_clock::now() + 30s;
       table.exit_code == 0 && table.out.find(" ago, ") == std::string::npos &&
       std::chrono::steady_clock::now() < deadline;
       table = daemon.ctl({"models"}))
    std::this_thread::sleep_for(250ms);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("wav2lip (UNTRAINED)"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("WARNING: wav2lip runs untrained"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" ago, "), std::string::npos) << "when the heartbeat ran: " << table.out;
  EXPECT_NE(table.out.find("0:10"), std::string::npos) << "retinaface's keep_alive: " << table.out;
  EXPECT_NE(table.out.find("device cpu: models "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("heygemd resident memory (RSS): "), std::string::npos) << table.out;

  const auto loaded = daemon.ctl({"--json", "models", "load", "retinaface"});
  ASSERT_EQ(loaded.exit_code, 0) << loaded.err;
  EXPECT_NE(loaded.out.find("\"message\":\"loaded retinaface\""), std::string::npos) << loaded.out;
  const auto rows = protocol::parse_response(loaded.out.substr(0, loaded.out.find('\n')));
  const auto& models = std::get<protocol::ModelsResponse>(rows);
  for (const auto& row : models.rows)
    if (row.name == "retinaface") EXPECT_EQ(row.state, "warm");
  EXPECT_GT(models.daemon_rss_bytes, 0u);
  ASSERT_EQ(models.devices.size(), 1u);
  EXPECT_GT(models.devices[0].models_bytes, 0u);
  const auto unloaded = daemon.ctl({"models", "unload", "retinaface"});
  EXPECT_EQ(unloaded.exit_code, 0) << unloaded.err;
  EXPECT_NE(unloaded.out.find("unloaded retinaface"), std::string::npos) << unloaded.out;
}

}  // namespace
}  // namespace heygem::test
