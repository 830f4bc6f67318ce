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
#include <sstream>
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

UniqueFd connect_to(const fs::path& socket) {
  UniqueFd connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  if (::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("cannot connect to " + socket.string());
  return connection;
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
  DaemonOptions options;
  options.limits = {{"max_connections_per_uid", "256"}};  // one uid plays every client here
  Daemon daemon(options);
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

// Peers that announce the largest frame and send only its first bytes: heygemd must not reserve
// the announced size for each of them (128 x 1 MiB would be 128 MiB held by idle sockets).
TEST(Load, HalfSentLargeFramesHoldLittleMemory) {
  DaemonOptions options;
  options.limits = {{"max_connections_per_uid", "256"}};  // one uid plays every peer here
  Daemon daemon(options);
  std::this_thread::sleep_for(500ms);
  const std::uint64_t rss_before = daemon.resident_kib();
  const std::string announced = protocol::encode_frame(std::string(protocol::kMaxFrameBytes, ' '));
  const std::string_view sent(announced.data(), protocol::kFrameHeaderBytes + 16);
  std::vector<UniqueFd> peers;
  for (int i = 0; i < 128; ++i) {
    peers.push_back(connect_to(daemon.socket()));
    ASSERT_EQ(::send(peers.back().get(), sent.data(), sent.size(), MSG_NOSIGNAL), static_cast<ssize_t>(sent.size()));
  }
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(daemon.ping()) << "a full connection table keeps others out";
  const std::uint64_t grown_kib = daemon.resident_kib() - std::min(daemon.resident_kib(), rss_before);
  EXPECT_LT(grown_kib, 32u * 1024) << "128 half-sent frames hold " << grown_kib / 1024 << " MiB";
  peers.clear();
  EXPECT_TRUE(daemon.ping());
}

// ---------------------------------------------------------------------------------------------
// A small tmpfs (mounting needs root, as in CI).
class SmallTmpfs {
 public:
  SmallTmpfs(const fs::path& where, const std::string& size) : where_(where) {
    fs::create_directories(where_);
    mounted_ = ::mount("tmpfs", where_.c_str(), "tmpfs", 0, ("size=" + size + ",mode=0755").c_str()) == 0;
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

// Fills the file system of `folder` up to `leave_bytes` of free space with one file.
void fill_up(const fs::path& folder, std::uint64_t leave_bytes) {
  const fs::path filler = folder / "filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string chunk(4096, 'x');
    while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()))) {
    }
  }
  const auto full_size = fs::file_size(filler);
  fs::resize_file(filler, full_size > leave_bytes ? full_size - leave_bytes : 0);
}

// The spool is a 2 MiB tmpfs; where none can be mounted (no root), heygemd runs with a 2 MiB
// RLIMIT_FSIZE instead, so that the 3 MiB input cannot be written either (EFBIG, not ENOSPC).
TEST(DiskFull, AFullSpoolFailsTheJobCleanlyAndTheDaemonKeepsServing) {
  TempDir mount_point;
  const fs::path state = mount_point.path() / "state";
  SmallTmpfs tmpfs(state, "2m");
  DaemonOptions options;
  options.state_dir = state;
  if (!tmpfs.mounted()) options.max_file_bytes = 2u << 20;
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
  const std::string message = full.out + full.err;
  EXPECT_EQ(full.exit_code, 8) << "expected a resource failure: " << message;
  const std::string cause = tmpfs.mounted() ? "No space left on device" : "File too large";
  EXPECT_NE(message.find(cause), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(output)) << "a failed job left a partial output";
  EXPECT_TRUE(daemon.ping());
  EXPECT_TRUE(daemon.jobs().empty()) << "a job that could not be spooled was accepted";
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});

  const auto small = daemon.ctl(submit_args(clip, clip, {"-o", output.string()}));
  EXPECT_EQ(small.exit_code, 0) << small.out << small.err << daemon.log_text();
  EXPECT_TRUE(is_valid_video(output));
}

// The submitter's output is on a full file system: the job fails (exit 1) with the cause named,
// nothing appears at -o (attached submit or fetch), the render stays fetchable, and the daemon serves
// the next job.
TEST(DiskFull, AnOutputTheDaemonCannotWriteFailsClearly) {
  TempDir mount_point;
  const fs::path full_disk = mount_point.path() / "full";
  SmallTmpfs tmpfs(full_disk, "256k");
  if (!tmpfs.mounted()) GTEST_SKIP() << "cannot mount a tmpfs for the output (needs root)";
  fill_up(full_disk, 4096);  // one page: the result's first bytes fit, the rest does not
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 1.0);

  const fs::path output = full_disk / "out.mp4";
  const auto attached = daemon.ctl(submit_args(clip, clip, {"-o", output.string()}));
  const std::string message = attached.out + attached.err;
  EXPECT_EQ(attached.exit_code, 1) << "expected a failed job: " << message;
  EXPECT_NE(message.find("No space left on device"), std::string::npos) << message;
  EXPECT_NE(message.find("out.mp4"), std::string::npos) << "the message does not name the output: " << message;
  EXPECT_FALSE(fs::exists(output)) << "a failed job left a partial output";

  // --detach cannot take -o (heygemctl would be gone when the result is ready): refused up front.
  const fs::path detached_output = full_disk / "detached.mp4";
  const auto refused = daemon.ctl(submit_args(clip, clip, {"--detach", "-o", detached_output.string()}));
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("--detach cannot take -o"), std::string::npos) << refused.err;
  EXPECT_FALSE(fs::exists(detached_output));
  const auto detached = daemon.ctl(submit_args(clip, clip, {"--detach"}));
  ASSERT_EQ(detached.exit_code, 0) << detached.err;
  const std::string id = trim(detached.out);
  EXPECT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  // Fetching onto the full disk fails with the cause and leaves nothing at the path.
  const auto fetched_full = daemon.ctl({"fetch", id, "-o", detached_output.string()});
  EXPECT_NE(fetched_full.exit_code, 0);
  EXPECT_NE((fetched_full.out + fetched_full.err).find("No space left on device"), std::string::npos)
      << fetched_full.out << fetched_full.err;
  EXPECT_FALSE(fs::exists(detached_output)) << "a failed fetch left a partial file";

  // Nothing rendered is lost: the result is fetched to where there is room.
  const fs::path rescued = daemon.work() / "rescued.mp4";
  const auto fetched = daemon.ctl({"fetch", id, "-o", rescued.string()});
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_TRUE(is_valid_video(rescued));
  EXPECT_TRUE(daemon.ping());
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
  const fs::path next = daemon.work() / "next.mp4";
  EXPECT_EQ(daemon.ctl(submit_args(clip, clip, {"-o", next.string()})).exit_code, 0);
  EXPECT_TRUE(is_valid_video(next));
}

// ---------------------------------------------------------------------------------------------
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

// Runs a copy of heygemctl (in the daemon's work dir, opened to others) as `user`: the copy is
// reachable wherever the build tree lives (/root is 0700).
CommandResult ctl_as(const Daemon& daemon, const OtherUser& user, std::vector<std::string> args) {
  fs::permissions(daemon.work(), fs::perms::others_exec | fs::perms::others_read, fs::perm_options::add);
  const fs::path copy = daemon.work() / "heygemctl";
  if (!fs::exists(copy)) fs::copy_file(heygemctl_binary(), copy);
  args.insert(args.begin(), {copy.string(), "--socket", daemon.socket().string()});
  return run_command(args, user.uid, user.gid);
}

TEST(Permissions, SocketHasTheConfiguredModeAndTheDaemonsGroup) {
  Daemon daemon;
  struct stat info {};
  ASSERT_EQ(::stat(daemon.socket().c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 07777, 0660u);
  EXPECT_EQ(info.st_gid, ::getegid());
  // A uid outside the socket's owner and group is refused by the mode itself.
  if (const auto other = nobody()) {
    const auto refused = ctl_as(daemon, *other, {"ping"});
    EXPECT_NE(refused.exit_code, 0) << "another uid connected to a 0660 socket";
    EXPECT_NE(refused.err.find("ermission denied"), std::string::npos) << refused.err;
  }
}

TEST(Permissions, AnotherUidCanNeitherSeeCancelNorFetchAJob) {
  const auto other = nobody();
  if (!other) GTEST_SKIP() << "needs root and a 'nobody' user";
  DaemonOptions options;
  options.socket_mode = "0666";  // let the other uid in, so that the daemon's own checks are tested
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto submitted = daemon.ctl(submit_args(clip, clip, {"--detach"}));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id = trim(submitted.out);
  const auto as_other = [&](std::vector<std::string> args) { return ctl_as(daemon, *other, std::move(args)); };
  const auto pinged = as_other({"ping"});
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


void expect_path_like_rejection(const std::optional<ReceivedFrame>& frame) {
  ASSERT_TRUE(frame.has_value()) << "the daemon closed the connection without saying why";
  const auto response = protocol::parse_response(frame->payload);
  const auto* error = std::get_if<protocol::ErrorResponse>(&response);
  ASSERT_NE(error, nullptr) << frame->payload;
  EXPECT_EQ(error->code, ErrorCode::protocol);
  EXPECT_NE(error->message.find("path-like"), std::string::npos) << error->message;
}

const std::vector<std::string> kPathLikeKeys = {"path", "output_path", "input_file", "dir"};

std::string request_with(const std::string& key) {
  return R"({"type":"list","all":true,")" + key + R"(":"/etc/shadow"})";
}

// Before hello, a bad request ends the connection: the daemon says why, then closes.
TEST(Permissions, PathLikeFieldsBeforeHelloAreRejectedAndTheConnectionClosed) {
  Daemon daemon;
  for (const auto& key : kPathLikeKeys) {
    SCOPED_TRACE(key);
    const UniqueFd connection = connect_to(daemon.socket());
    send_frame_with_fds(connection.get(), request_with(key));
    expect_path_like_rejection(recv_frame_with_fds(connection.get()));
    EXPECT_FALSE(recv_frame_with_fds(connection.get()).has_value()) << "the connection stayed open";
  }
  EXPECT_TRUE(daemon.ping());
}

// After hello, each bad request gets its error and the connection keeps serving good ones.
TEST(Permissions, PathLikeFieldsAfterHelloAreRejectedOneByOne) {
  Daemon daemon;
  const UniqueFd connection = connect_to(daemon.socket());
  send_frame_with_fds(connection.get(), protocol::encode(protocol::Request{protocol::HelloRequest{
                                            protocol::kProtocolVersion, "hardening test"}}));
  const auto hello = recv_frame_with_fds(connection.get());
  ASSERT_TRUE(hello.has_value());
  ASSERT_TRUE(std::holds_alternative<protocol::HelloResponse>(protocol::parse_response(hello->payload)))
      << hello->payload;
  for (const auto& key : kPathLikeKeys) {
    SCOPED_TRACE(key);
    send_frame_with_fds(connection.get(), request_with(key));
    expect_path_like_rejection(recv_frame_with_fds(connection.get()));
  }
  send_frame_with_fds(connection.get(), protocol::encode(protocol::Request{protocol::PingRequest{}}));
  const auto pong = recv_frame_with_fds(connection.get());
  ASSERT_TRUE(pong.has_value());
  EXPECT_TRUE(std::holds_alternative<protocol::PongResponse>(protocol::parse_response(pong->payload)))
      << pong->payload;
}

}  // namespace
}  // namespace heygem::test
