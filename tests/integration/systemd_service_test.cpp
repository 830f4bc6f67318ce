// heygemd as a systemd service (issue 6), with real processes: the sd_notify sequence on a test
// NOTIFY_SOCKET (EXTEND_TIMEOUT_USEC while the preload models load, READY=1 only once they are warm,
// then STATUS= / WATCHDOG=1, STOPPING=1 on SIGTERM), and socket activation through Debian's
// systemd-socket-activate with a real job (GRID clip, the e2e fixture's box, hash-init generator,
// fast x264) submitted by heygemctl over the activated socket.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/integration/process.hpp"
#include "tests/media/media_test_support.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::integration {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Sets an environment variable (inherited by the processes the test starts) for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// The service manager's end of $NOTIFY_SOCKET: a bound AF_UNIX datagram socket.
class NotifyReceiver {
 public:
  explicit NotifyReceiver(fs::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("cannot bind " + path_.string() + ": " + std::strerror(errno));
    timeval timeout{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifyReceiver() { ::close(fd_); }
  NotifyReceiver(const NotifyReceiver&) = delete;
  NotifyReceiver& operator=(const NotifyReceiver&) = delete;

  const fs::path& path() const { return path_; }
  // The next message, or "" when none came within a second.
  std::string receive() {
    char buffer[4096];
    const auto n = ::recv(fd_, buffer, sizeof buffer, 0);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// systemd-socket-activate from Debian's systemd package (scripts/install-deps.sh installs it).
std::optional<fs::path> socket_activate_binary() {
  for (const char* candidate : {"/usr/bin/systemd-socket-activate", "/lib/systemd/systemd-socket-activate"})
    if (::access(candidate, X_OK) == 0) return fs::path(candidate);
  return std::nullopt;
}

class SystemdService : public ::testing::Test {
 protected:
  // A 1-second cut of the e2e fixture's GRID clip, its audio, and the fixture's fixed face box.
  static void SetUpTestSuite() {
    media_dir_ = std::make_unique<test::TempDir>();
    const auto meta = test::manifest("e2e")["meta"];
    const auto grid = test::shared_root() / "media" / "grid";
    const auto video_clip = grid / (meta["video_clip"].get<std::string>() + ".mpg");
    const auto audio_clip = grid / (meta["audio_clips"][0].get<std::string>() + ".mpg");
    audio_ = media_dir_->path() / "speech.wav";
    video_ = media_dir_->path() / "face.mp4";
    media::test::run_ffmpeg("-i " + audio_clip.string() + " -t 1 -vn -ac 1 -ar 16000 " + audio_.string());
    media::test::run_ffmpeg("-i " + video_clip.string() + " -t 1 -an -c:v libx264 -preset ultrafast -crf 10 " +
                            video_.string());
    const auto box = meta["box_top_bottom_left_right"];
    box_ = std::to_string(box[0].get<int>()) + "," + std::to_string(box[1].get<int>()) + "," +
           std::to_string(box[2].get<int>()) + "," + std::to_string(box[3].get<int>());
  }
  static void TearDownTestSuite() { media_dir_.reset(); }

  void SetUp() override {
    fs::create_directories(scratch_);
    // Embedded model entries (hash-init wav2lip, RetinaFace; both preloaded) from the shared folder.
    std::ofstream(config_) << "socket:\n  path: " << config_socket_.string() << "\n"
                           << "state_dir: " << (dir_.path() / "state").string() << "\n"
                           << "scheduler:\n  shutdown_timeout: 1s\n"
                           << "models:\n  directory: " << (test::shared_root() / "models").string() << "\n";
  }
  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      daemon_->kill(SIGTERM);
      EXPECT_EQ(daemon_->wait(120s), 0) << "heygemd did not stop cleanly\n" << daemon_log();
    }
  }

  RunResult ctl(const fs::path& socket, std::vector<std::string> args) {
    args.insert(args.begin(), {HEYGEMCTL_BINARY, "--socket", socket.string()});
    return run_process(args, scratch_);
  }

  std::string daemon_log() const {
    std::ifstream in(log_);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  static std::unique_ptr<test::TempDir> media_dir_;
  static fs::path audio_, video_;
  static std::string box_;
  test::TempDir dir_;
  fs::path scratch_ = dir_.path() / "scratch";
  fs::path config_ = dir_.path() / "heygemd.yaml";
  fs::path config_socket_ = dir_.path() / "config.sock";  // where heygemd binds when not activated
  fs::path log_ = dir_.path() / "heygemd.log";
  std::unique_ptr<BackgroundProcess> daemon_;
};

std::unique_ptr<test::TempDir> SystemdService::media_dir_;
fs::path SystemdService::audio_, SystemdService::video_;
std::string SystemdService::box_;

TEST_F(SystemdService, NotifyExtendsTheStartWhileModelsLoadThenReadyStatusWatchdogStopping) {
  NotifyReceiver notify(dir_.path() / "notify");
  std::optional<ScopedEnv> socket_env, watchdog_env;
  socket_env.emplace("NOTIFY_SOCKET", notify.path().string());
  watchdog_env.emplace("WATCHDOG_USEC", "2000000");  // pings every second at most
  daemon_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{HEYGEMD_BINARY, "--config", config_.string()}, log_);
  socket_env.reset();
  watchdog_env.reset();

  // Everything up to READY=1 (model loads on a busy 2-core box can take a minute).
  std::vector<std::string> before_ready;
  std::string ready;
  for (auto deadline = std::chrono::steady_clock::now() + 10min; ready.empty();) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no READY=1\n" << daemon_log();
    const auto message = notify.receive();
    if (message.empty()) {
      ASSERT_TRUE(daemon_->running()) << "heygemd exited before READY=1\n" << daemon_log();
      continue;
    }
    if (starts_with(message, "READY=1"))
      ready = message;
    else
      before_ready.push_back(message);
  }
  ASSERT_FALSE(before_ready.empty());
  EXPECT_EQ(before_ready.front(), "STATUS=loading 2 model(s)");
  EXPECT_NE(std::find(before_ready.begin(), before_ready.end(), "EXTEND_TIMEOUT_USEC=30000000"), before_ready.end())
      << "no EXTEND_TIMEOUT_USEC before READY=1";
  for (const auto& message : before_ready)
    EXPECT_TRUE(starts_with(message, "STATUS=") || starts_with(message, "EXTEND_TIMEOUT_USEC=")) << message;
  EXPECT_EQ(ready, "READY=1\nSTATUS=2 model(s) warm, 0 job(s) running, 0 queued");

  // READY=1 came after the warm-up: both preload models are warm, with their warm-up timed.
  const auto models = ctl(config_socket_, {"--json", "models"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  const auto reply = nlohmann::json::parse(models.out);
  const auto& rows = reply.contains("rows") ? reply["rows"] : reply;
  ASSERT_EQ(rows.size(), 2u) << models.out;
  for (const auto& row : rows) {
    EXPECT_EQ(row["state"], "warm") << row.dump();
    EXPECT_GT(row["warmup_s"].get<double>(), 0.0) << row.dump();
  }

  // Then STATUS= and WATCHDOG=1 from the status timer, and no more extensions.
  bool watchdog = false;
  for (int second = 0; second < 30 && !watchdog; ++second) {
    const auto message = notify.receive();
    EXPECT_FALSE(starts_with(message, "EXTEND_TIMEOUT_USEC=")) << "extension after READY=1";
    watchdog = message == "WATCHDOG=1";
  }
  EXPECT_TRUE(watchdog) << "no WATCHDOG=1 within 30 s\n" << daemon_log();

  daemon_->kill(SIGTERM);
  bool stopping = false;
  for (int second = 0; second < 30 && !stopping; ++second) stopping = notify.receive() == "STOPPING=1";
  EXPECT_TRUE(stopping) << "no STOPPING=1 after SIGTERM";
  EXPECT_EQ(daemon_->wait(120s), 0) << daemon_log();
}

TEST_F(SystemdService, SocketActivatedBySystemdSocketActivateRunsARealJob) {
  const auto activate = socket_activate_binary();
  if (!activate)
    GTEST_SKIP() << "systemd-socket-activate not found in /usr/bin or /lib/systemd (Debian package systemd; "
                    "scripts/install-deps.sh installs it)";
  const auto socket = dir_.path() / "activated.sock";
  // Without --accept it binds and listens, waits for the first connection, then execs heygemd in
  // its place with the listening socket as fd 3 (LISTEN_FDS=1, LISTEN_PID).
  daemon_ = std::make_unique<BackgroundProcess>(
      std::vector<std::string>{activate->string(), "--listen=" + socket.string(), HEYGEMD_BINARY, "--config",
                               config_.string(), "--log-level", "debug"},
      log_);
  struct stat bound {};
  for (int i = 0; i < 200 && ::stat(socket.c_str(), &bound) != 0; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(S_ISSOCK(bound.st_mode)) << "systemd-socket-activate did not create " << socket << "\n" << daemon_log();

  // The first connection starts heygemd; the request waits in the backlog while the models load.
  const auto output = dir_.path() / "out.mp4";
  const auto job = ctl(socket, {"submit", "--audio", audio_.string(), video_.string(), "-o", output.string(), "--box",
                                box_, "--crf", "35", "--preset", "ultrafast"});
  ASSERT_EQ(job.exit_code, 0) << job.out << job.err << daemon_log();
  const auto probed = media::test::probe_stream(output, "video");
  EXPECT_EQ(probed.codec, "h264");
  EXPECT_EQ(probed.width, media::test::probe_stream(video_, "video").width);
  EXPECT_GT(probed.frames, 0);
  EXPECT_FALSE(media::test::probe_stream(output, "audio").codec.empty());

  // The process is heygemd itself (exec'd in place), and it served the socket it was given: the
  // same inode as before it started, no lock file, nothing bound at the config's path.
  std::error_code ignored;
  EXPECT_EQ(fs::canonical("/proc/" + std::to_string(daemon_->pid()) + "/exe", ignored), fs::canonical(HEYGEMD_BINARY));
  EXPECT_NE(daemon_log().find("using the socket systemd passed (fd 3)"), std::string::npos) << daemon_log();
  struct stat served {};
  ASSERT_EQ(::stat(socket.c_str(), &served), 0);
  EXPECT_EQ(served.st_ino, bound.st_ino) << "the activated socket was replaced";
  EXPECT_FALSE(fs::exists(socket.string() + ".lock"));
  EXPECT_FALSE(fs::exists(config_socket_)) << "heygemd bound its own socket as well";
  const auto jobs = nlohmann::json::parse(ctl(socket, {"--json", "list", "--all"}).out);
  ASSERT_EQ(jobs["jobs"].size(), 1u);
  EXPECT_EQ(jobs["jobs"][0]["state"], "done");

  // On stop the socket stays: it belongs to the service manager, not to heygemd.
  daemon_->kill(SIGTERM);
  EXPECT_EQ(daemon_->wait(120s), 0) << daemon_log();
  EXPECT_TRUE(fs::exists(socket)) << "heygemd removed the socket it was passed";
}

}  // namespace
}  // namespace heygem::integration
