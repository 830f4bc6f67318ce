// Real heygemd and heygemctl processes on a temporary socket and state dir, the real pipeline on
// GRID clips (trimmed to keep the suite quick), RetinaFace from the shared models folder or the
// e2e fixture's fixed box, fast x264 settings.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fd_passing.hpp"
#include "common/protocol.hpp"
#include "tests/integration/process.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNoGroup = 65534;

// Inputs shared by every test: 1-second cuts of two GRID clips (the e2e fixture's video and audio).
struct Inputs {
  fs::path audio, video, other_video, third_video;
  std::string box;  // "T,B,L,R" from the e2e fixture
};

class DaemonE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    media_dir_ = std::make_unique<test::TempDir>();
    fs::permissions(media_dir_->path(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
    const auto meta = test::manifest("e2e")["meta"];
    const auto grid = test::shared_root() / "media" / "grid";
    const auto video_clip = grid / (meta["video_clip"].get<std::string>() + ".mpg");
    const auto audio_clip = grid / (meta["audio_clips"][0].get<std::string>() + ".mpg");
    auto& in = inputs_;
    in.audio = media_dir_->path() / "speech.wav";
    in.video = media_dir_->path() / "face.mp4";
    in.other_video = media_dir_->path() / "face2.mp4";
    in.third_video = media_dir_->path() / "face3.mp4";
    media::test::run_ffmpeg("-i " + audio_clip.string() + " -t 1 -vn -ac 1 -ar 16000 " + in.audio.string());
    for (const auto& [target, start] : {std::pair{in.video, "0"}, {in.other_video, "1"}, {in.third_video, "2"}})
      media::test::run_ffmpeg("-ss " + std::string(start) + " -i " + video_clip.string() +
                   " -t 1 -an -c:v libx264 -preset ultrafast -crf 10 " + target.string());
    const auto box = meta["box_top_bottom_left_right"];
    in.box = std::to_string(box[0].get<int>()) + "," + std::to_string(box[1].get<int>()) + "," +
             std::to_string(box[2].get<int>()) + "," + std::to_string(box[3].get<int>());
  }
  static void TearDownTestSuite() { media_dir_.reset(); }

  void SetUp() override {
    fs::permissions(dir_.path(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
    scratch_ = dir_.path() / "scratch";
    fs::create_directories(scratch_);
    write_config("");
  }
  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      daemon_->kill(SIGTERM);
      const auto code = daemon_->wait(120s);
      EXPECT_EQ(code, 0) << "heygemd did not stop cleanly\n" << daemon_log();
    }
  }

  void write_config(const std::string& extra) {
    const auto models = test::shared_root() / "models";
    std::ofstream(config_) << "socket:\n  path: " << socket_.string() << "\n  mode: \"0666\"\n"
                           << "state_dir: " << (dir_.path() / "state").string() << "\n"
                           << "scheduler:\n  shutdown_timeout: 1s\n"
                           << "models:\n  directory: " << models.string() << "\n"
                           << extra;
  }

  void start_daemon() {
    daemon_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{HEYGEMD_BINARY, "--config", config_.string(), "--log-level", "debug"}, log_);
    for (int i = 0; i < 1200; ++i) {
      if (ctl({"ping"}).exit_code == 0) return;
      ASSERT_TRUE(daemon_->running()) << "heygemd exited\n" << daemon_log();
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "heygemd did not answer ping\n" << daemon_log();
  }

  // start_daemon() returns once ping answers, which it does while the models load: this waits for
  // the daemon's ready line.
  void wait_for_ready_line() {
    for (int i = 0; i < 6000; ++i) {
      if (daemon_log().find(" ready: ") != std::string::npos) return;
      ASSERT_TRUE(daemon_->running()) << "heygemd exited\n" << daemon_log();
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "heygemd never said it was ready\n" << daemon_log();
  }

  RunResult ctl(std::vector<std::string> args, RunOptions options = {}) {
    args.insert(args.begin(), {HEYGEMCTL_BINARY, "--socket", socket_.string()});
    return run_process(args, scratch_, options);
  }

  // submit --detach with the fixed box and fast encoding; returns the job id.
  std::string submit_detached(const std::vector<fs::path>& videos) {
    std::vector<std::string> args{"submit", "--detach", "--audio", inputs_.audio.string(),
                                  "--box", inputs_.box, "--crf", "35", "--preset", "ultrafast"};
    for (const auto& v : videos) args.push_back(v.string());
    const auto result = ctl(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    std::smatch match;
    const std::regex id("[0-9a-f]{12}");
    EXPECT_TRUE(std::regex_search(result.out, match, id)) << "no job id in: " << result.out;
    return match.str();
  }

  nlohmann::json status(const std::string& job) {
    const auto result = ctl({"--json", "status", job});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  }

  void wait_for_state(const std::string& job, const std::string& state) {
    for (int i = 0; i < 3000; ++i) {
      if (status(job)["state"] == state) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "job " << job << " never reached " << state;
  }

  std::string daemon_log() {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  static std::unique_ptr<test::TempDir> media_dir_;
  static Inputs inputs_;
  test::TempDir dir_;
  fs::path scratch_;
  fs::path socket_ = dir_.path() / "heygemd.sock";
  fs::path config_ = dir_.path() / "heygemd.yaml";
  fs::path log_ = dir_.path() / "heygemd.log";
  std::unique_ptr<BackgroundProcess> daemon_;
};

std::unique_ptr<test::TempDir> DaemonE2E::media_dir_;
Inputs DaemonE2E::inputs_;

TEST_F(DaemonE2E, SubmitAndWaitThroughThePipelineWithRetinaFace) {
  start_daemon();
  const auto output = dir_.path() / "out.mp4";
  const auto result = ctl({"submit", "--audio", inputs_.audio.string(), inputs_.video.string(), "-o", output.string(),
                           "--crf", "35", "--preset", "ultrafast"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err << daemon_log();
  const auto probed = media::test::probe_stream(output, "video");
  EXPECT_EQ(probed.codec, "h264");
  EXPECT_EQ(probed.width, media::test::probe_stream(inputs_.video, "video").width);
  EXPECT_GT(probed.frames, 0);
  EXPECT_FALSE(media::test::probe_stream(output, "audio").codec.empty());
  // The result went into the client's file, not the spool.
  const auto jobs = nlohmann::json::parse(ctl({"--json", "list", "--all"}).out);
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_TRUE(jobs["jobs"][0]["items"][0]["delivered"].get<bool>());
  EXPECT_EQ(jobs["jobs"][0]["items"][0]["frames_without_face"], 0);
  EXPECT_EQ(jobs["jobs"][0]["items"][0]["avatar_cache"], "miss");
  EXPECT_GT(jobs["jobs"][0]["items"][0]["detect_s"].get<double>(), 0);

  // The same video again: its faces come from the avatar cache, no detection runs; unless the
  // submit bypasses the cache.
  for (const bool bypass : {false, true}) {
    std::vector<std::string> args{"--json", "submit", "--audio", inputs_.audio.string(), inputs_.video.string(),
                                  "-o", (dir_.path() / (bypass ? "off.mp4" : "hit.mp4")).string(),
                                  "--crf", "35", "--preset", "ultrafast"};
    if (bypass) args.push_back("--no-avatar-cache");
    const auto again = ctl(args);
    ASSERT_EQ(again.exit_code, 0) << again.out << again.err << daemon_log();
    std::istringstream lines(again.out);
    std::string line;
    nlohmann::json item_done;
    while (std::getline(lines, line))
      if (!line.empty() && nlohmann::json::parse(line).value("event", "") == "item_done") item_done = nlohmann::json::parse(line);
    ASSERT_FALSE(item_done.is_null()) << again.out;
    EXPECT_EQ(item_done["avatar_cache"], bypass ? "off" : "hit");
    if (!bypass) EXPECT_EQ(item_done["detect_s"].get<double>(), 0.0);
  }
}

TEST_F(DaemonE2E, OneAudioThreeVideosGivesThreeOutputsWithPerItemProgress) {
  start_daemon();
  const auto out_dir = dir_.path() / "outs";
  fs::create_directories(out_dir);
  const auto result = ctl({"--json", "submit", "--audio", inputs_.audio.string(), inputs_.video.string(),
                           inputs_.other_video.string(), inputs_.third_video.string(), "-o", out_dir.string(), "--box",
                           inputs_.box, "--crf", "35", "--preset", "ultrafast"});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err << daemon_log();
  std::set<int> running_items, done_items;
  std::istringstream lines(result.out);
  std::string line, last_event;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    const auto message = nlohmann::json::parse(line);
    if (message.value("type", "") != "event") continue;
    last_event = message["event"];
    if (last_event == "running") running_items.insert(message["item"].get<int>());
    if (last_event == "item_done") done_items.insert(message["item"].get<int>());
  }
  EXPECT_EQ(running_items, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(done_items, (std::set<int>{0, 1, 2}));
  EXPECT_EQ(last_event, "done");
  int outputs = 0;
  for (const auto& entry : fs::directory_iterator(out_dir)) {
    EXPECT_FALSE(media::test::probe_stream(entry.path(), "video").codec.empty()) << entry.path();
    ++outputs;
  }
  EXPECT_EQ(outputs, 3);
}

TEST_F(DaemonE2E, DetachThenWatchFromASecondClientThenFetch) {
  start_daemon();
  const auto job = submit_detached({inputs_.video});
  const auto watched = ctl({"--json", "watch", job});
  EXPECT_EQ(watched.exit_code, 0) << watched.err;
  EXPECT_NE(watched.out.find("\"event\":\"done\""), std::string::npos) << watched.out;
  EXPECT_EQ(ctl({"wait", job}).exit_code, 0);
  const auto fetched = dir_.path() / "fetched.mp4";
  const auto result = ctl({"fetch", job, "-o", fetched.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_FALSE(media::test::probe_stream(fetched, "video").codec.empty());
  const auto logs = ctl({"logs", job});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.out.find("item 1 done"), std::string::npos) << logs.out;
  EXPECT_NE(daemon_log().find("job " + job + ":"), std::string::npos);  // daemon lines carry the id
}

TEST_F(DaemonE2E, CancelAQueuedAndARunningJob) {
  start_daemon();
  const auto running = submit_detached({inputs_.video, inputs_.other_video, inputs_.third_video});
  const auto queued = submit_detached({inputs_.video});
  wait_for_state(running, "running");
  EXPECT_EQ(status(queued)["state"], "queued");
  EXPECT_EQ(ctl({"cancel", queued}).exit_code, 0);
  EXPECT_EQ(status(queued)["state"], "cancelled");
  EXPECT_EQ(ctl({"cancel", running}).exit_code, 0);
  EXPECT_EQ(ctl({"wait", running}).exit_code, 4);  // cancelled
  EXPECT_EQ(status(running)["state"], "cancelled");
  EXPECT_TRUE(ctl({"ping"}).exit_code == 0);
}

TEST_F(DaemonE2E, KillDashNineDuringAJobThenRestartCompletesItAndTheQueuedOne) {
  start_daemon();
  const auto first = submit_detached({inputs_.video, inputs_.other_video});
  const auto second = submit_detached({inputs_.third_video});
  wait_for_state(first, "running");
  daemon_->kill(SIGKILL);
  ASSERT_TRUE(daemon_->wait(30s).has_value());
  start_daemon();  // the stale socket is replaced; the store is recovered
  EXPECT_EQ(ctl({"wait", first}).exit_code, 0) << daemon_log();
  EXPECT_EQ(ctl({"wait", second}).exit_code, 0) << daemon_log();
  EXPECT_EQ(status(first)["attempts"], 2);
  EXPECT_EQ(status(second)["attempts"], 1);
  for (const auto& [job, items] : {std::pair{first, 2}, {second, 1}}) {
    const auto out = dir_.path() / ("fetched-" + job);
    fs::create_directories(out);
    ASSERT_EQ(ctl({"fetch", job, "-o", out.string()}).exit_code, 0);
    EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), items);
  }
  EXPECT_NE(daemon_log().find("interrupted while running; requeued"), std::string::npos);
}

TEST_F(DaemonE2E, AnotherUidCanNeitherSeeNorCancelAJob) {
  start_daemon();
  const auto job = submit_detached({inputs_.video});
  const RunOptions nobody{kNobody, kNoGroup};
  EXPECT_EQ(ctl({"ping"}, nobody).exit_code, 0);  // it may talk to the daemon...
  const auto seen = ctl({"status", job}, nobody);
  EXPECT_EQ(seen.exit_code, 5) << seen.out << seen.err;  // ...but the job does not exist for it
  EXPECT_EQ(ctl({"cancel", job}, nobody).exit_code, 5);
  EXPECT_EQ(ctl({"logs", job}, nobody).exit_code, 5);
  const auto listed = ctl({"--json", "list", "--all"}, nobody);
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_TRUE(nlohmann::json::parse(listed.out)["jobs"].empty()) << listed.out;
  EXPECT_EQ(ctl({"wait", job}).exit_code, 0);  // the owner's job went on untouched
}

class RawClient {
 public:
  explicit RawClient(const fs::path& socket) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    EXPECT_EQ(::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    timeval timeout{10, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  void write(const std::string& bytes) { (void)!::write(fd_.get(), bytes.data(), bytes.size()); }
  // The reply: an error's code, "closed" when the daemon hung up, or the reply's type.
  std::string reply() {
    try {
      const auto frame = recv_frame_with_fds(fd_.get());
      if (!frame) return "closed";
      const auto message = nlohmann::json::parse(frame->payload);
      return message["type"] == "error" ? message["code"].get<std::string>() : message["type"].get<std::string>();
    } catch (const std::exception&) {
      return "closed";
    }
  }

 private:
  UniqueFd fd_;
};

TEST_F(DaemonE2E, HostileBytesGetAnErrorOrACloseAndTheDaemonStillAnswers) {
  start_daemon();
  const std::string hello = protocol::encode_frame(R"({"type":"hello","version":1})");
  {
    RawClient random_bytes(socket_);
    std::mt19937 random(42);
    std::string bytes(8192, '\0');
    for (auto& b : bytes) b = static_cast<char>(random());
    random_bytes.write(bytes);
    const auto reply = random_bytes.reply();
    EXPECT_TRUE(reply == "protocol" || reply == "closed") << reply;
  }
  {
    RawClient oversized(socket_);
    oversized.write(hello);
    EXPECT_EQ(oversized.reply(), "hello");
    oversized.write(std::string("\xff\xff\xff\xff", 4));
    EXPECT_EQ(oversized.reply(), "protocol");
    EXPECT_EQ(oversized.reply(), "closed");
  }
  {
    RawClient wrong_version(socket_);
    wrong_version.write(protocol::encode_frame(R"({"type":"hello","version":99})"));
    EXPECT_EQ(wrong_version.reply(), "protocol");
    EXPECT_EQ(wrong_version.reply(), "closed");
  }
  {
    RawClient unknown_type(socket_);
    unknown_type.write(hello);
    EXPECT_EQ(unknown_type.reply(), "hello");
    unknown_type.write(protocol::encode_frame(R"({"type":"self_destruct"})"));
    EXPECT_EQ(unknown_type.reply(), "protocol");
  }
  EXPECT_EQ(ctl({"ping"}).exit_code, 0) << daemon_log();
}

TEST_F(DaemonE2E, ConfigErrorNamesKeyAndLine) {
  write_config("  entries:\n    - name: wav2lip\n      kind: wav2lip\n      device: quantum\n");
  int bad_line = 0;
  {
    std::ifstream in(config_);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number)
      if (line.find("quantum") != std::string::npos) bad_line = number;
  }
  ASSERT_GT(bad_line, 0);
  const auto check = run_process({HEYGEMD_BINARY, "--check-config", "--config", config_.string()}, scratch_);
  EXPECT_EQ(check.exit_code, 2);
  EXPECT_NE(check.err.find("line " + std::to_string(bad_line) + ":"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("models.entries[0].device"), std::string::npos) << check.err;
  write_config("");
  EXPECT_EQ(run_process({HEYGEMD_BINARY, "--check-config", "--config", config_.string()}, scratch_).exit_code, 0);
}

TEST_F(DaemonE2E, ASecondDaemonOnTheSameSocketRefusesToStart) {
  start_daemon();
  const auto second = run_process({HEYGEMD_BINARY, "--config", config_.string()}, scratch_, {.timeout = 120s});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_NE(second.err.find("another heygemd is running"), std::string::npos) << second.err;
  EXPECT_EQ(ctl({"ping"}).exit_code, 0);
}

// The models' rows of `heygemctl --json models` as (name, device) -> state.
std::map<std::pair<std::string, std::string>, std::string> replica_states(const nlohmann::json& models) {
  std::map<std::pair<std::string, std::string>, std::string> states;
  for (const auto& row : models["rows"]) states[{row["name"], row["device"]}] = row["state"];
  return states;
}

TEST_F(DaemonE2E, TwoCpuReplicasAreWarmShownAndRunTwoJobsAtOnce) {
  write_config("  device: [cpu:0, cpu:1]\n");
  start_daemon();
  // Both replicas of both default models are warm before the first job (preload per replica).
  nlohmann::json models;
  for (int i = 0; i < 600; ++i) {
    models = nlohmann::json::parse(ctl({"--json", "models"}).out);
    const auto states = replica_states(models);
    if (std::all_of(states.begin(), states.end(), [](const auto& s) { return s.second == "warm"; })) break;
    std::this_thread::sleep_for(100ms);
  }
  const auto states = replica_states(models);
  const std::map<std::pair<std::string, std::string>, std::string> expected{
      {{"wav2lip", "cpu"}, "warm"}, {{"wav2lip", "cpu:1"}, "warm"},
      {{"retinaface", "cpu"}, "warm"}, {{"retinaface", "cpu:1"}, "warm"}};
  EXPECT_EQ(states, expected) << models.dump(2);
  const auto table = ctl({"models"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("cpu:1"), std::string::npos) << table.out;
  // auto is one job at a time per CPU replica; two replicas run two jobs at once.
  EXPECT_NE(daemon_log().find("scheduler: cpu runs up to 1 job(s) at once"), std::string::npos) << daemon_log();
  EXPECT_NE(daemon_log().find("scheduler: cpu:1 runs up to 1 job(s) at once"), std::string::npos) << daemon_log();

  const auto first = submit_detached({inputs_.video, inputs_.other_video});
  const auto second = submit_detached({inputs_.video, inputs_.other_video});
  ASSERT_EQ(ctl({"wait", first}).exit_code, 0) << daemon_log();
  ASSERT_EQ(ctl({"wait", second}).exit_code, 0) << daemon_log();
  const auto a = status(first), b = status(second);
  // The runs overlapped: each started before the other finished (one device would serialise them).
  EXPECT_LT(a["started_at_ms"].get<std::int64_t>(), b["finished_at_ms"].get<std::int64_t>());
  EXPECT_LT(b["started_at_ms"].get<std::int64_t>(), a["finished_at_ms"].get<std::int64_t>());
  // The first job's two items ran at once, one on each replica: the free one takes waiting items.
  const auto log = daemon_log();
  for (const std::string device : {"cpu", "cpu:1"}) {
    bool ran_there = false;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
      ran_there |= line.find("job " + first + ": item ") != std::string::npos &&
                   line.size() >= device.size() + 5 && line.compare(line.size() - device.size() - 5, std::string::npos,
                                                                    "(on " + device + ")") == 0;
    EXPECT_TRUE(ran_there) << "no item of the first job ran on " << device << "\n" << log;
  }

  // Unload and load act on every replica of the model.
  ASSERT_EQ(ctl({"models", "unload", "retinaface"}).exit_code, 0);
  auto after = replica_states(nlohmann::json::parse(ctl({"--json", "models"}).out));
  EXPECT_EQ((after[{"retinaface", "cpu"}]), "unloaded");
  EXPECT_EQ((after[{"retinaface", "cpu:1"}]), "unloaded");
  EXPECT_EQ((after[{"wav2lip", "cpu:1"}]), "warm");
  ASSERT_EQ(ctl({"models", "load", "retinaface"}).exit_code, 0);
  after = replica_states(nlohmann::json::parse(ctl({"--json", "models"}).out));
  EXPECT_EQ((after[{"retinaface", "cpu"}]), "warm");
  EXPECT_EQ((after[{"retinaface", "cpu:1"}]), "warm");
}

TEST_F(DaemonE2E, KeepAliveExpiresEachReplicaOnItsOwn) {
  write_config("  device: [cpu:0, cpu:1]\n"
               "  entries:\n"
               "    - name: wav2lip\n      kind: wav2lip\n      keep_alive: 1s\n"
               "    - name: retinaface\n      kind: retinaface\n      weights: retinaface_mobilenet0.25.pth\n"
               "      preload: false\n");
  start_daemon();
  // Both generator replicas were preloaded and expire after 1 s idle, each on its own device.
  std::map<std::pair<std::string, std::string>, std::string> states;
  for (int i = 0; i < 600; ++i) {
    states = replica_states(nlohmann::json::parse(ctl({"--json", "models"}).out));
    if (states[{"wav2lip", "cpu"}] == "unloaded" && states[{"wav2lip", "cpu:1"}] == "unloaded") break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ((states[{"wav2lip", "cpu"}]), "unloaded") << daemon_log();
  EXPECT_EQ((states[{"wav2lip", "cpu:1"}]), "unloaded") << daemon_log();
  // Not preloaded: both of its replicas are listed, neither loaded.
  EXPECT_EQ((states[{"retinaface", "cpu"}]), "unloaded");
  EXPECT_EQ((states[{"retinaface", "cpu:1"}]), "unloaded");
  EXPECT_EQ(states.size(), 4u);
}

TEST_F(DaemonE2E, AReloadThatMovesTheModelsToAnotherDeviceStillRunsJobs) {
  write_config("  device: cpu\n");
  start_daemon();
  write_config("  device: cpu:1\n");
  auto reload = ctl({"reload"});
  for (int i = 0; i < 600 && reload.exit_code == 8; ++i) {  // refused while the start's preload runs
    std::this_thread::sleep_for(100ms);
    reload = ctl({"reload"});
  }
  ASSERT_EQ(reload.exit_code, 0) << reload.out << reload.err << daemon_log();
  const auto models = nlohmann::json::parse(ctl({"--json", "models"}).out);
  ASSERT_EQ(models["rows"].size(), 2u) << models.dump(2);
  for (const auto& row : models["rows"]) EXPECT_EQ(row["device"], "cpu:1") << row.dump();
  // The models were loaded anew on cpu:1: the pipeline warm-up ran there before the reload answered.
  EXPECT_NE(daemon_log().find("pipeline warm-up on cpu:1: "), std::string::npos) << daemon_log();
  // The job slots are the start's (cpu); the job runs on the models' new replicas.
  const auto job = submit_detached({inputs_.video});
  EXPECT_EQ(ctl({"wait", job}).exit_code, 0) << daemon_log();
  EXPECT_EQ(status(job)["state"], "done") << daemon_log();
}

// Issue 16 item 3: before READY heygemd renders one short synthetic item per device through the
// whole pipeline (models.warm_pipeline, on by default); its line comes before the ready line, its
// folder is gone, and the first job after ready runs as usual. Off, no item runs.
TEST_F(DaemonE2E, PipelineWarmUpRunsBeforeReadyAndTheFirstJobSucceeds) {
  start_daemon();
  wait_for_ready_line();
  ASSERT_FALSE(HasFailure());
  const auto log = daemon_log();
  const auto warm = log.find("pipeline warm-up on cpu: ");
  const auto ready = log.find(" ready: ");
  ASSERT_NE(warm, std::string::npos) << log;
  ASSERT_NE(ready, std::string::npos) << log;
  EXPECT_LT(warm, ready) << log;
  EXPECT_EQ(log.find("pipeline warm-up on cpu: ", warm + 1), std::string::npos) << "one item per device:\n" << log;
  EXPECT_EQ(log.find("pipeline warm-up on cpu failed"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir_.path() / "state" / "pipeline-warmup"));
  // The models are free again: warm, no lease left by the item.
  for (const auto& row : nlohmann::json::parse(ctl({"--json", "models"}).out)["rows"])
    EXPECT_EQ(row["state"], "warm") << row.dump();

  const auto output = dir_.path() / "first.mp4";
  const auto result = ctl({"submit", "--audio", inputs_.audio.string(), "--box", inputs_.box, "--crf", "35",
                           "--preset", "ultrafast", inputs_.video.string(), "-o", output.string()});
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err << daemon_log();
  EXPECT_GT(media::test::probe_stream(output, "video").frames, 0);
}

TEST_F(DaemonE2E, PipelineWarmUpOffRunsNoItem) {
  // The default models, both preloaded: only the key decides.
  write_config("  warm_pipeline: false\n");
  start_daemon();
  wait_for_ready_line();
  ASSERT_FALSE(HasFailure());
  const auto log = daemon_log();
  EXPECT_EQ(log.find("pipeline warm-up"), std::string::npos) << log;
}

TEST_F(DaemonE2E, DeviceAutoLogsOneLineSayingWhichAndWhy) {
  start_daemon();
  const auto log = daemon_log();
  const std::string line = "models: device auto is cpu (this heygemd is a CPU-only build";
  const auto at = log.find(line);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_EQ(log.find(line, at + 1), std::string::npos) << "logged twice:\n" << log;
  EXPECT_NE(log.find("used by wav2lip, retinaface", at), std::string::npos) << log;
  const auto models = nlohmann::json::parse(ctl({"--json", "models"}).out);
  for (const auto& row : models["rows"]) EXPECT_EQ(row["device"], "cpu") << row.dump();
}

}  // namespace
}  // namespace heygem::integration
