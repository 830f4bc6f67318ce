// heygemd under faults, load and other users, in CI-sized versions (scripts/soak.sh and
// scripts/load.sh run the long ones that docs/hardening.md records):
// crash soak (kill -9 while a queue runs), concurrent clients, disk full, unwritable output,
// socket permissions, another uid, and path-like fields at the live socket.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "common/fd_passing.hpp"
#include "common/unique_fd.hpp"
#include "tests/hardening/daemon_harness.hpp"

namespace heygem::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Sizes of the CI versions; the long versions pass larger numbers through these variables.
int env_int(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value ? std::stoi(value) : fallback;
}

const std::vector<std::string> kFixedBox = {"--box", "0,32,0,32"};  // no detector: quick and deterministic

std::vector<std::string> submit_args(const fs::path& audio, const fs::path& video, std::vector<std::string> extra) {
  std::vector<std::string> args{"submit"};
  args.insert(args.end(), kFixedBox.begin(), kFixedBox.end());
  args.insert(args.end(), {"--audio", audio.string(), video.string()});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

// Polls until every job is finished (or the limit passes).
std::vector<protocol::JobStatus> wait_all_finished(const Daemon& daemon, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto jobs = daemon.jobs();
    const bool finished = std::all_of(jobs.begin(), jobs.end(), [](const auto& j) { return protocol::is_finished(j.state); });
    if (finished || std::chrono::steady_clock::now() > deadline) return jobs;
    std::this_thread::sleep_for(200ms);
  }
}

// ---------------------------------------------------------------------------------------------
TEST(CrashSoak, EveryQueuedJobIsDoneExactlyOnceAfterKillNineCycles) {
  const int jobs_wanted = env_int("HEYGEM_SOAK_JOBS", 4), cycles = env_int("HEYGEM_SOAK_CYCLES", 3);
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 2.0);
  std::vector<std::string> ids;
  for (int i = 0; i < jobs_wanted; ++i) {
    const auto submitted = daemon.ctl(submit_args(clip, clip, {"--detach"}));
    ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
    ids.push_back(trim(submitted.out));
  }
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(100, 2500);
  for (int cycle = 0; cycle < cycles; ++cycle) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(random)));
    daemon.kill9();
    daemon.start();
  }
  const auto jobs = wait_all_finished(daemon, 600s);
  ASSERT_EQ(jobs.size(), ids.size()) << "jobs were lost or invented";
  std::map<std::string, int> seen;
  for (const auto& job : jobs) {
    ++seen[job.job_id];
    EXPECT_EQ(job.state, protocol::JobState::done) << job.job_id << ": " << job.error;
  }
  for (const auto& id : ids) {
    EXPECT_EQ(seen[id], 1) << id;
    const fs::path output = daemon.work() / (id + ".mp4");
    const auto fetched = daemon.ctl({"fetch", id, "-o", output.string()});
    EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
    EXPECT_TRUE(is_valid_video(output)) << id;
  }
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------------
TEST(Load, ConcurrentClientsAllCompleteInFifoOrderAndResourcesReturnToBaseline) {
  const int clients = env_int("HEYGEM_LOAD_CLIENTS", 16), per_client = env_int("HEYGEM_LOAD_JOBS", 2);
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  // Warm-up job: first-use allocations belong to the baseline.
  ASSERT_EQ(daemon.ctl(submit_args(clip, clip, {"-o", (daemon.work() / "warm.mp4").string()})).exit_code, 0);
  std::this_thread::sleep_for(500ms);
  const std::size_t fds_before = daemon.open_fds();
  const std::uint64_t rss_before = daemon.resident_kib();

  std::vector<int> failures(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> errors(static_cast<std::size_t>(clients));
  {
    std::vector<std::jthread> threads;
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        for (int j = 0; j < per_client; ++j) {
          const fs::path output = daemon.work() / ("out-" + std::to_string(c) + "-" + std::to_string(j) + ".mp4");
          const auto result = daemon.ctl(submit_args(clip, clip, {"-q", "-o", output.string()}));
          if (result.exit_code != 0 || !is_valid_video(output)) {
            ++failures[static_cast<std::size_t>(c)];
            errors[static_cast<std::size_t>(c)] = result.err;
          }
        }
      });
  }
  for (int c = 0; c < clients; ++c) EXPECT_EQ(failures[static_cast<std::size_t>(c)], 0) << errors[static_cast<std::size_t>(c)];

  auto jobs = daemon.jobs();
  EXPECT_EQ(jobs.size(), static_cast<std::size_t>(clients * per_client + 1));
  // One device, one job at a time: a job submitted earlier never starts later.
  std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.submitted_at_ms < b.submitted_at_ms; });
  for (std::size_t i = 1; i < jobs.size(); ++i) {
    if (jobs[i - 1].submitted_at_ms < jobs[i].submitted_at_ms) {
      EXPECT_LE(jobs[i - 1].started_at_ms, jobs[i].started_at_ms) << jobs[i - 1].job_id << " vs " << jobs[i].job_id;
    }
  }

  std::this_thread::sleep_for(1s);
  EXPECT_EQ(daemon.open_fds(), fds_before) << "file descriptors leaked";
  EXPECT_LE(daemon.resident_kib(), rss_before + 96 * 1024) << "resident memory grew by more than 96 MiB";
  EXPECT_TRUE(daemon.ping());
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------------
// A 2 MiB tmpfs as the state dir (mounting needs root, as in CI).
class SmallTmpfs {
 public:
  explicit SmallTmpfs(const fs::path& where) : where_(where) {
    fs::create_directories(where_);
    mounted_ = ::mount("tmpfs", where_.c_str(), "tmpfs", 0, "size=2m,mode=0700") == 0;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(where_.c_str(), MNT_DETACH);
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  bool mounted() const { return mounted_; }

 private:
  fs::path where_;
  bool mounted_ = false;
};

TEST(DiskFull, AFullSpoolFailsTheJobCleanlyAndTheDaemonKeepsServing) {
  TempDir mount_point;
  SmallTmpfs tmpfs(mount_point.path() / "state");
  if (!tmpfs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs (needs root)";
  DaemonOptions options;
  options.state_dir = mount_point.path() / "state";
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4", big = daemon.work() / "big.mp4";
  make_tiny_clip(clip, 32, 0.4);
  {
    std::ofstream filler(big, std::ios::binary);  // 3 MiB: more than the spool can hold
    const std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 3; ++i) filler << chunk;
  }
  const fs::path output = daemon.work() / "out.mp4";
  const auto full = daemon.ctl(submit_args(clip, big, {"-o", output.string()}));
  EXPECT_EQ(full.exit_code, 8) << "expected a resource failure: " << full.out << full.err;
  EXPECT_NE((full.out + full.err).find("space"), std::string::npos) << full.out << full.err;
  EXPECT_FALSE(fs::exists(output)) << "a failed job left a partial output";
  EXPECT_TRUE(daemon.ping());
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});

  const auto small = daemon.ctl(submit_args(clip, clip, {"-o", output.string()}));
  EXPECT_EQ(small.exit_code, 0) << small.err;
  EXPECT_TRUE(is_valid_video(output));
}

TEST(DiskFull, AnOutputTheDaemonCannotWriteFailsClearly) {
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  // /dev/full opens for writing, and every write to it fails with ENOSPC.
  const auto result = daemon.ctl(submit_args(clip, clip, {"--force", "-o", "/dev/full"}));
  const std::string message = result.out + result.err;
  EXPECT_NE(result.exit_code, 0) << message;
  EXPECT_NE(message.find("space"), std::string::npos) << message;
  EXPECT_TRUE(daemon.ping());
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------------
TEST(Permissions, SocketHasTheConfiguredModeAndTheDaemonsGroup) {
  Daemon daemon;
  struct stat info {};
  ASSERT_EQ(::stat(daemon.socket().c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, ::getegid());
}

struct OtherUser {
  uid_t uid;
  gid_t gid;
};
std::optional<OtherUser> nobody() {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* user = ::getpwnam("nobody");
  if (!user) return std::nullopt;
  return OtherUser{user->pw_uid, user->pw_gid};
}

TEST(Permissions, AnotherUidCanNeitherSeeCancelNorFetchAJob) {
  const auto other = nobody();
  if (!other) GTEST_SKIP() << "needs root and a 'nobody' user";
  DaemonOptions options;
  options.socket_mode = "0666";  // let the other uid in, so that the daemon's own checks are tested
  Daemon daemon(options);
  // The other uid must reach the binaries and the socket through the work dir.
  fs::permissions(daemon.work(), fs::perms::others_exec | fs::perms::others_read, fs::perm_options::add);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto submitted = daemon.ctl(submit_args(clip, clip, {"--detach"}));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = trim(submitted.out);
  const auto as_other = [&](std::vector<std::string> args) { return daemon.ctl(args, other->uid, other->gid); };
  const auto pinged = as_other({"ping"});
  if (pinged.exit_code == 126 || pinged.exit_code == 127) GTEST_SKIP() << "cannot run heygemctl as nobody";
  ASSERT_EQ(pinged.exit_code, 0) << pinged.err;

  const auto listed = as_other({"list", "--all"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.find(id), std::string::npos) << "another uid sees the job: " << listed.out;
  EXPECT_EQ(as_other({"status", id}).exit_code, 5);
  EXPECT_EQ(as_other({"cancel", id}).exit_code, 5);
  EXPECT_EQ(as_other({"logs", id}).exit_code, 5);
  const auto jobs = wait_all_finished(daemon, 300s);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].state, protocol::JobState::done) << "the other uid's cancel took effect";
  const fs::path stolen = fs::temp_directory_path() / ("heygem-stolen-" + id + ".mp4");
  EXPECT_EQ(as_other({"fetch", id, "--force", "-o", stolen.string()}).exit_code, 5);
  EXPECT_FALSE(fs::exists(stolen) && fs::file_size(stolen) > 0) << "another uid fetched the output";
  fs::remove(stolen);
  EXPECT_EQ(daemon.ctl({"fetch", id, "-o", (daemon.work() / "mine.mp4").string()}).exit_code, 0);
}

TEST(Permissions, PathLikeFieldsAreRejectedAtTheLiveSocket) {
  Daemon daemon;
  const UniqueFd connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, daemon.socket().c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  for (const std::string key : {"path", "output_path", "input_file", "dir"}) {
    SCOPED_TRACE(key);
    const std::string payload = R"({"type":"list","all":true,")" + key + R"(":"/etc/shadow"})";
    send_frame_with_fds(connection.get(), payload);
    const auto frame = recv_frame_with_fds(connection.get());
    if (!frame) {  // the daemon may close a connection after a protocol error: that is a rejection too
      EXPECT_TRUE(daemon.ping());
      break;
    }
    const auto response = protocol::parse_response(frame->payload);
    const auto* error = std::get_if<protocol::ErrorResponse>(&response);
    ASSERT_NE(error, nullptr) << frame->payload;
    EXPECT_EQ(error->code, ErrorCode::protocol);
    EXPECT_NE(error->message.find("path-like"), std::string::npos) << error->message;
  }
  EXPECT_TRUE(daemon.ping());
}

}  // namespace
}  // namespace heygem::test
