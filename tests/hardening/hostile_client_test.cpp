// heygemd against a hostile local client (issue 14): each test is one attack, written here as raw
// socket work against a real heygemd, and checks that the attacker gets a clear refusal while the
// daemon keeps serving everyone else. The attacker is uid `nobody` where another uid matters (its
// connections are made by a child that switches to nobody and hands the sockets back: SO_PEERCRED
// records the uid at connect).
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fd_passing.hpp"
#include "common/unique_fd.hpp"
#include "tests/hardening/daemon_harness.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::vector<std::string> kFixedBox = {"--box", "0,32,0,32"};

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The test process holds many sockets and fds at once.
void raise_own_fd_limit() {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

struct User {
  uid_t uid;
  gid_t gid;
};

std::optional<User> nobody() {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* user = ::getpwnam("nobody");
  if (!user) return std::nullopt;
  return User{user->pw_uid, user->pw_gid};
}

UniqueFd connect_socket(const fs::path& socket) {
  UniqueFd connection(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  if (::connect(connection.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("cannot connect to " + socket.string() + ": " + std::strerror(errno));
  return connection;
}

// `count` connections to `socket` made as `user` (by a child that switched to it), handed back.
std::vector<UniqueFd> connect_as(const User& user, const fs::path& socket, int count) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw std::runtime_error("socketpair");
  UniqueFd parent_end(pair[0]), child_end(pair[1]);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {  // async-signal-safe calls only
    if (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0) ::_exit(126);
    for (int i = 0; i < count; ++i) {
      const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) ::_exit(125);
      char byte = 'c';
      iovec chunk{&byte, 1};
      union {
        char bytes[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
      } control{};
      msghdr message{};
      message.msg_iov = &chunk;
      message.msg_iovlen = 1;
      message.msg_control = control.bytes;
      message.msg_controllen = sizeof control.bytes;
      cmsghdr* header = CMSG_FIRSTHDR(&message);
      header->cmsg_level = SOL_SOCKET;
      header->cmsg_type = SCM_RIGHTS;
      header->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(header), &fd, sizeof fd);
      if (::sendmsg(child_end.get(), &message, 0) != 1) ::_exit(124);
      ::close(fd);
    }
    ::_exit(0);
  }
  child_end.reset();
  std::vector<UniqueFd> connections;
  for (int i = 0; i < count; ++i) {
    auto frame_fd = [&]() -> UniqueFd {
      char byte;
      iovec chunk{&byte, 1};
      union {
        char bytes[CMSG_SPACE(sizeof(int))];
        cmsghdr align;
      } control{};
      msghdr message{};
      message.msg_iov = &chunk;
      message.msg_iovlen = 1;
      message.msg_control = control.bytes;
      message.msg_controllen = sizeof control.bytes;
      if (::recvmsg(parent_end.get(), &message, MSG_CMSG_CLOEXEC) != 1) return UniqueFd();
      const cmsghdr* header = CMSG_FIRSTHDR(&message);
      if (!header || header->cmsg_type != SCM_RIGHTS) return UniqueFd();
      int fd;
      std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
      return UniqueFd(fd);
    }();
    if (!frame_fd) break;
    connections.push_back(std::move(frame_fd));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (static_cast<int>(connections.size()) != count)
    throw std::runtime_error("connecting as uid " + std::to_string(user.uid) + " failed (child status " +
                             std::to_string(status) + ")");
  return connections;
}

// One frame within `limit`: the frame, or nullopt with `closed` set when the daemon closed first.
struct Received {
  std::optional<protocol::Response> response;
  bool closed = false;
  bool timed_out = false;
};

Received receive_within(int fd, std::chrono::milliseconds limit) {
  FrameReceiver receiver;
  const auto deadline = Clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    // A frame begun is read to its end: the receiver has consumed its header, and a later call
    // would start in the middle of it.
    if (left.count() <= 0) {
      if (!receiver.in_frame()) return {std::nullopt, false, true};
      left = 1000ms;
    }
    pollfd poll_fd{fd, POLLIN, 0};
    if (::poll(&poll_fd, 1, static_cast<int>(left.count())) <= 0) {
      if (receiver.in_frame() && Clock::now() > deadline + 5s) return {std::nullopt, true, false};
      continue;
    }
    try {
      if (auto frame = receiver.read(fd)) return {protocol::parse_response(frame->payload), false, false};
    } catch (const Error&) {
      return {std::nullopt, true, false};
    }
    if (receiver.eof()) return {std::nullopt, true, false};
  }
}

void send_request(int fd, const protocol::Request& request, std::span<const int> fds = {}) {
  send_frame_with_fds(fd, protocol::encode(request), fds);
}

void hello(int fd) {
  send_request(fd, protocol::HelloRequest{protocol::kProtocolVersion, "hostile test"});
  const auto answer = receive_within(fd, 10s);
  ASSERT_TRUE(answer.response.has_value()) << "no hello answer";
  ASSERT_TRUE(std::holds_alternative<protocol::HelloResponse>(*answer.response)) << protocol::encode(*answer.response);
}

const protocol::ErrorResponse* as_error(const Received& received) {
  return received.response ? std::get_if<protocol::ErrorResponse>(&*received.response) : nullptr;
}

std::string describe(const Received& received) {
  if (received.timed_out) return "no answer (timed out)";
  if (received.closed) return "closed without an answer";
  return protocol::encode(*received.response);
}

// A ping over a fresh connection answered within `limit` (the daemon is not frozen).
bool pings_within(const fs::path& socket, std::chrono::milliseconds limit) {
  try {
    const auto connection = connect_socket(socket);
    send_request(connection.get(), protocol::HelloRequest{protocol::kProtocolVersion, "probe"});
    const auto greeting = receive_within(connection.get(), limit);
    if (!greeting.response || !std::holds_alternative<protocol::HelloResponse>(*greeting.response)) return false;
    send_request(connection.get(), protocol::PingRequest{});
    const auto pong = receive_within(connection.get(), limit);
    return pong.response && std::holds_alternative<protocol::PongResponse>(*pong.response);
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<std::string> submit_args(const fs::path& audio, const fs::path& video, std::vector<std::string> extra) {
  std::vector<std::string> args{"submit"};
  args.insert(args.end(), kFixedBox.begin(), kFixedBox.end());
  args.insert(args.end(), {"--audio", audio.string(), video.string()});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

protocol::SubmitRequest submit_request(std::size_t videos, std::string audio_name = "a.wav",
                                       std::string video_name = "v.mp4") {
  protocol::SubmitRequest request;
  request.audio_name = std::move(audio_name);
  for (std::size_t i = 0; i < videos; ++i) request.item_names.push_back(video_name);
  request.options.box = protocol::FaceBoxOption{0, 32, 0, 32};
  request.fds = request.expected_fds();
  return request;
}

std::string detached_job(const Daemon& daemon, const fs::path& clip) {
  const auto submitted = daemon.ctl(submit_args(clip, clip, {"--detach"}));
  if (submitted.exit_code != 0) throw std::runtime_error("submit failed: " + submitted.err);
  return trim(submitted.out);
}

// ---------------------------------------------------------------------------------------------
// Finding 1: a FIFO that never ends (opened O_RDWR, so reads never see EOF), /dev/zero and a
// socket as inputs. Each submit must be refused at once; before, each one blocked a dispatcher
// thread for good and four of them froze every user's submit, logs, fetch and reload.
TEST(HostileClient, NonRegularInputsAreRefusedAtOnceAndEveryoneElseIsServed) {
  Daemon daemon;
  const fs::path fifo = daemon.work() / "endless.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const UniqueFd endless(::open(fifo.c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(endless.valid());
  const UniqueFd zero(::open("/dev/zero", O_RDONLY | O_CLOEXEC));
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const UniqueFd socket_a(pair[0]), socket_b(pair[1]);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const UniqueFd regular(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));

  struct Case {
    std::string what;
    int audio, video;
    std::string kind;
  };
  const std::vector<Case> cases = {{"FIFO video", regular.get(), endless.get(), "FIFO"},
                                   {"FIFO audio", endless.get(), regular.get(), "FIFO"},
                                   {"/dev/zero audio", zero.get(), regular.get(), "character device"},
                                   {"socket video", regular.get(), socket_a.get(), "socket"},
                                   {"FIFO video again", regular.get(), endless.get(), "FIFO"},
                                   {"FIFO video, fifth", regular.get(), endless.get(), "FIFO"}};
  std::vector<UniqueFd> attackers;  // all kept open while the others are served
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    attackers.push_back(connect_socket(daemon.socket()));
    const int fd = attackers.back().get();
    hello(fd);
    const int fds[] = {c.audio, c.video};
    const auto started = Clock::now();
    send_request(fd, submit_request(1), fds);
    const auto answer = receive_within(fd, 5s);
    const auto* error = as_error(answer);
    ASSERT_NE(error, nullptr) << describe(answer);
    EXPECT_LT(Clock::now() - started, 2s);
    EXPECT_EQ(error->code, ErrorCode::invalid_argument) << error->message;
    EXPECT_NE(error->message.find("regular file"), std::string::npos) << error->message;
    EXPECT_NE(error->message.find(c.kind), std::string::npos) << error->message;
  }
  // Everyone else: ping, a whole job, its logs and a fetch.
  EXPECT_TRUE(pings_within(daemon.socket(), 1s));
  const auto id = detached_job(daemon, clip);
  EXPECT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  EXPECT_EQ(daemon.ctl({"logs", id}).exit_code, 0);
  const fs::path fetched = daemon.work() / "fetched.mp4";
  EXPECT_EQ(daemon.ctl({"fetch", id, "-o", fetched.string()}).exit_code, 0);
  EXPECT_TRUE(is_valid_video(fetched));
}

// ---------------------------------------------------------------------------------------------
// Finding 2: with the 1024-fd table of a unit without LimitNOFILE=, eight connections each send a
// submit header with 129 fds and stop. Before, accept() spun on EMFILE (hundreds of MB of log) and
// another user's running job failed with "Too many open files".
TEST(HostileClient, StalledFramesFullOfFdsNeitherFloodTheLogNorStarveOthers) {
  const auto attacker = nobody();
  if (!attacker) GTEST_SKIP() << "needs root and a 'nobody' user";
  raise_own_fd_limit();
  DaemonOptions options;
  options.socket_mode = "0666";
  options.max_open_files = 1024;
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 2.0);
  const auto running = detached_job(daemon, clip);  // runs while the attack goes on
  const auto log_before = daemon.log_text().size();

  const UniqueFd payload_file(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));
  std::vector<UniqueFd> carried;
  for (std::size_t i = 0; i < protocol::kMaxFdsPerFrame; ++i) carried.emplace_back(::dup(payload_file.get()));
  std::vector<int> raw_fds;
  for (const auto& fd : carried) raw_fds.push_back(fd.get());
  auto request = submit_request(64);
  for (int i = 0; i < 64; ++i) request.output_names.push_back("o.mp4");
  request.fds = request.expected_fds();
  const std::string frame = protocol::encode_frame(protocol::encode(request));

  auto attackers = connect_as(*attacker, daemon.socket(), 8);
  for (auto& connection : attackers) {
    hello(connection.get());
    // The header and a few bytes with all 129 fds, then nothing: the frame never completes.
    iovec chunk{const_cast<char*>(frame.data()), protocol::kFrameHeaderBytes + 8};
    union {
      char bytes[CMSG_SPACE(sizeof(int) * protocol::kMaxFdsPerFrame)];
      cmsghdr align;
    } control{};
    msghdr message{};
    message.msg_iov = &chunk;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * raw_fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * raw_fds.size());
    std::memcpy(CMSG_DATA(header), raw_fds.data(), sizeof(int) * raw_fds.size());
    ASSERT_GT(::sendmsg(connection.get(), &message, MSG_NOSIGNAL), 0);
  }
  std::this_thread::sleep_for(3s);

  EXPECT_TRUE(pings_within(daemon.socket(), 1s)) << "another user is locked out";
  int refused = 0;
  for (auto& connection : attackers) {
    const auto answer = receive_within(connection.get(), 100ms);
    if (const auto* error = as_error(answer)) {
      EXPECT_EQ(error->code, ErrorCode::resource) << error->message;
      EXPECT_NE(error->message.find("limits.max_pending_fds_per_uid"), std::string::npos) << error->message;
      ++refused;
    }
  }
  EXPECT_GE(refused, 1) << "the attacker was never told it holds too many fds";
  const auto waited = daemon.ctl({"wait", running});
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  const fs::path output = daemon.work() / "during.mp4";
  const auto during = daemon.ctl(submit_args(clip, clip, {"-o", output.string()}));
  EXPECT_EQ(during.exit_code, 0) << during.err;
  EXPECT_TRUE(is_valid_video(output));
  const auto log = daemon.log_text();
  EXPECT_LT(log.size() - log_before, 64u * 1024) << "the log grew by " << log.size() - log_before << " bytes";
  EXPECT_EQ(log.find("Too many open files", log_before), std::string::npos) << log.substr(log_before, 4096);
}

// ---------------------------------------------------------------------------------------------
// Finding 3: `wait` on one's own job, then close, 200 times. Before, every such connection stayed
// open until the job ended (the daemon read nothing during a wait), so 256 of them refused every
// other user.
TEST(HostileClient, WatchersThatHangUpAreGoneAtOnce) {
  const auto attacker = nobody();
  if (!attacker) GTEST_SKIP() << "needs root and a 'nobody' user";
  raise_own_fd_limit();
  DaemonOptions options;
  options.socket_mode = "0666";
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4", long_clip = daemon.work() / "long.mp4";
  make_tiny_clip(clip, 32, 0.4);
  make_tiny_clip(long_clip, 32, 60.0);
  const auto blocker = detached_job(daemon, long_clip);  // keeps the attacker's job queued

  // The attacker's own job (inputs opened here, submitted over its connection).
  auto submitter = connect_as(*attacker, daemon.socket(), 1);
  hello(submitter[0].get());
  const UniqueFd audio(::open(clip.c_str(), O_RDONLY | O_CLOEXEC)), video(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));
  const int fds[] = {audio.get(), video.get()};
  send_request(submitter[0].get(), submit_request(1), fds);
  const auto submitted = receive_within(submitter[0].get(), 30s);
  ASSERT_TRUE(submitted.response && std::holds_alternative<protocol::SubmittedResponse>(*submitted.response))
      << describe(submitted);
  const auto own_job = std::get<protocol::SubmittedResponse>(*submitted.response).job_id;
  submitter.clear();
  std::this_thread::sleep_for(500ms);
  const auto fds_before = daemon.open_fds();

  int ghosts = 0;
  for (int batch = 0; batch < 10; ++batch) {
    for (auto& connection : connect_as(*attacker, daemon.socket(), 20)) {
      send_request(connection.get(), protocol::HelloRequest{protocol::kProtocolVersion, "ghost"});
      send_request(connection.get(), protocol::WaitRequest{own_job});
      const auto greeting = receive_within(connection.get(), 5s);
      if (greeting.response && std::holds_alternative<protocol::HelloResponse>(*greeting.response)) ++ghosts;
    }  // closed here, while the wait is pending
  }
  EXPECT_EQ(ghosts, 200) << "some ghost connections were refused: hang-ups were not noticed";
  std::this_thread::sleep_for(1s);
  const auto jobs = daemon.jobs();
  for (const auto& job : jobs) {
    if (job.job_id == own_job) {
      ASSERT_FALSE(protocol::is_finished(job.state)) << "the job ended: no ghosts to see";
    }
  }
  EXPECT_LE(daemon.open_fds(), fds_before + 4) << "the connections of hung-up watchers are still open";
  EXPECT_TRUE(pings_within(daemon.socket(), 1s));
  daemon.ctl({"cancel", blocker});
}

// ---------------------------------------------------------------------------------------------
// Finding 4: idle connections and 1-byte-a-second frames. Before, any user could hold every
// connection; a refusal was a silent close.
TEST(HostileClient, IdleAndSlowConnectionsAreCutOffAndRefusalsAreReadable) {
  const auto attacker = nobody();
  if (!attacker) GTEST_SKIP() << "needs root and a 'nobody' user";
  raise_own_fd_limit();
  DaemonOptions options;
  options.socket_mode = "0666";
  options.limits = {{"max_connections", "16"}, {"max_connections_per_uid", "8"},
                    {"request_timeout", "3s"}, {"frame_timeout", "3s"}};
  Daemon daemon(options);

  auto idle = connect_as(*attacker, daemon.socket(), 7);  // never send anything
  auto slow = connect_as(*attacker, daemon.socket(), 1);  // greeted, then a frame at 1 byte/s
  hello(slow[0].get());
  std::this_thread::sleep_for(300ms);

  // The attacker's next connection is refused, and it can read why.
  auto extra = connect_as(*attacker, daemon.socket(), 1);
  send_request(extra[0].get(), protocol::HelloRequest{protocol::kProtocolVersion, "one more"});
  const auto refusal = receive_within(extra[0].get(), 5s);
  const auto* refused = as_error(refusal);
  ASSERT_NE(refused, nullptr) << describe(refusal);
  EXPECT_EQ(refused->code, ErrorCode::resource);
  EXPECT_NE(refused->message.find("limits.max_connections_per_uid"), std::string::npos) << refused->message;
  EXPECT_TRUE(receive_within(extra[0].get(), 5s).closed);

  // Another uid is served meanwhile; and when the daemon is full, it says so too.
  EXPECT_TRUE(pings_within(daemon.socket(), 1s));
  std::this_thread::sleep_for(200ms);  // the probe's connection is gone
  std::vector<UniqueFd> mine;
  for (int i = 0; i < 8; ++i) {
    mine.push_back(connect_socket(daemon.socket()));
    hello(mine.back().get());
  }
  const auto beyond = connect_socket(daemon.socket());
  send_request(beyond.get(), protocol::HelloRequest{protocol::kProtocolVersion, "beyond"});
  const auto full = receive_within(beyond.get(), 5s);
  const auto* full_error = as_error(full);
  ASSERT_NE(full_error, nullptr) << describe(full);
  EXPECT_NE(full_error->message.find("limits.max_connections"), std::string::npos) << full_error->message;
  mine.clear();

  // The slow frame and the idle connections are cut off by their deadlines, with a reason. The slow
  // sender starts afresh here: on a loaded machine the steps above can outlast its deadlines.
  slow.clear();                                // within the attacker's cap of 8 connections
  std::this_thread::sleep_for(200ms);          // the daemon sees the hang-up
  slow = connect_as(*attacker, daemon.socket(), 1);
  hello(slow[0].get());
  const std::string frame = protocol::encode_frame(protocol::encode(protocol::Request{protocol::PingRequest{}}));
  const auto slow_start = Clock::now();
  bool slow_cut = false;
  for (std::size_t i = 0; i < frame.size() - 1 && Clock::now() - slow_start < 10s; ++i) {
    // A byte that cannot go any more (the daemon hung up) still leaves its reason to read.
    const bool sent = ::send(slow[0].get(), frame.data() + i, 1, MSG_NOSIGNAL) == 1;
    const auto answer = receive_within(slow[0].get(), 1s);
    if (const auto* error = as_error(answer)) {
      EXPECT_NE(error->message.find("limits.frame_timeout"), std::string::npos) << error->message;
      slow_cut = true;
      break;
    }
    if (answer.closed || !sent) break;
  }
  EXPECT_TRUE(slow_cut) << "a frame sent at 1 byte/s was never cut off";
  for (auto& connection : idle) {
    const auto answer = receive_within(connection.get(), 5s);
    const auto* error = as_error(answer);
    ASSERT_NE(error, nullptr) << describe(answer);
    EXPECT_NE(error->message.find("limits.request_timeout"), std::string::npos) << error->message;
    EXPECT_TRUE(receive_within(connection.get(), 5s).closed);
  }
  // The attacker's slots are free again.
  auto again = connect_as(*attacker, daemon.socket(), 1);
  hello(again[0].get());
}

// ---------------------------------------------------------------------------------------------
// The acceptance test: the wedge, the fd fill, ghost watchers and idle connections, all held at
// once by one uid, while another uid's jobs complete and its ping and status answer within 1 s.
TEST(HostileClient, AllAttacksAtOnceFromOneUidLeaveAnotherUidServed) {
  const auto attacker = nobody();
  if (!attacker) GTEST_SKIP() << "needs root and a 'nobody' user";
  raise_own_fd_limit();
  DaemonOptions options;
  options.socket_mode = "0666";
  options.max_open_files = 1024;
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4", long_clip = daemon.work() / "long.mp4";
  make_tiny_clip(clip, 32, 1.0);
  make_tiny_clip(long_clip, 32, 60.0);
  const auto victim_job = detached_job(daemon, clip);  // the other uid's (root's) job

  // The attacker's own long job, the one its ghosts wait on.
  std::vector<UniqueFd> held;
  std::string attacker_job;
  {
    auto submitter = connect_as(*attacker, daemon.socket(), 1);
    hello(submitter[0].get());
    const UniqueFd audio(::open(long_clip.c_str(), O_RDONLY | O_CLOEXEC)),
        video(::open(long_clip.c_str(), O_RDONLY | O_CLOEXEC));
    const int fds[] = {audio.get(), video.get()};
    send_request(submitter[0].get(), submit_request(1), fds);
    const auto submitted = receive_within(submitter[0].get(), 30s);
    ASSERT_TRUE(submitted.response && std::holds_alternative<protocol::SubmittedResponse>(*submitted.response))
        << describe(submitted);
    attacker_job = std::get<protocol::SubmittedResponse>(*submitted.response).job_id;
    // Ghost watchers.
    for (auto& ghost : connect_as(*attacker, daemon.socket(), 50)) {
      send_request(ghost.get(), protocol::HelloRequest{protocol::kProtocolVersion, "ghost"});
      send_request(ghost.get(), protocol::WaitRequest{attacker_job});
    }
  }
  // The wedge: submits whose video is a FIFO that never ends.
  const fs::path fifo = daemon.work() / "endless.fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const UniqueFd endless(::open(fifo.c_str(), O_RDWR | O_CLOEXEC)), regular(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));
  for (auto& wedge : connect_as(*attacker, daemon.socket(), 4)) {
    send_request(wedge.get(), protocol::HelloRequest{protocol::kProtocolVersion, "wedge"});
    const int fds[] = {regular.get(), endless.get()};
    send_request(wedge.get(), submit_request(1), fds);
    held.push_back(std::move(wedge));
  }
  // The fd fill: submit headers with 129 fds each, never completed.
  std::vector<UniqueFd> carried;
  std::vector<int> raw_fds;
  for (std::size_t i = 0; i < protocol::kMaxFdsPerFrame; ++i) {
    carried.emplace_back(::dup(regular.get()));
    raw_fds.push_back(carried.back().get());
  }
  auto big = submit_request(64);
  for (int i = 0; i < 64; ++i) big.output_names.push_back("o.mp4");
  big.fds = big.expected_fds();
  const std::string frame = protocol::encode_frame(protocol::encode(big));
  for (auto& stall : connect_as(*attacker, daemon.socket(), 8)) {
    send_request(stall.get(), protocol::HelloRequest{protocol::kProtocolVersion, "stall"});
    iovec chunk{const_cast<char*>(frame.data()), protocol::kFrameHeaderBytes + 8};
    union {
      char bytes[CMSG_SPACE(sizeof(int) * protocol::kMaxFdsPerFrame)];
      cmsghdr align;
    } control{};
    msghdr message{};
    message.msg_iov = &chunk;
    message.msg_iovlen = 1;
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * raw_fds.size());
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * raw_fds.size());
    std::memcpy(CMSG_DATA(header), raw_fds.data(), sizeof(int) * raw_fds.size());
    ::sendmsg(stall.get(), &message, MSG_NOSIGNAL);
    held.push_back(std::move(stall));
  }
  carried.clear();
  // Idle connections, as many as the daemon would take (256).
  for (auto& idle : connect_as(*attacker, daemon.socket(), 256)) held.push_back(std::move(idle));

  // Meanwhile the other uid: ping and status within 1 s, again and again, and its jobs complete.
  const auto until = Clock::now() + 8s;
  int probes = 0;
  while (Clock::now() < until) {
    EXPECT_TRUE(pings_within(daemon.socket(), 1s)) << "ping took over 1 s during the attack";
    const auto started = Clock::now();
    const auto status = daemon.ctl({"status", victim_job});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_LT(Clock::now() - started, 1s) << "status took over 1 s during the attack";
    ++probes;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_GT(probes, 3);
  const auto waited = daemon.ctl({"wait", victim_job});
  EXPECT_EQ(waited.exit_code, 0) << waited.out << waited.err;
  daemon.ctl({"cancel", attacker_job});  // the next job need not wait for its minute of video
  const fs::path output = daemon.work() / "victim.mp4";
  const auto another = daemon.ctl(submit_args(clip, clip, {"-o", output.string()}));
  EXPECT_EQ(another.exit_code, 0) << another.err;
  EXPECT_TRUE(is_valid_video(output));
  const auto log = daemon.log_text();
  EXPECT_EQ(log.find("Too many open files"), std::string::npos);
  EXPECT_LT(log.size(), 1u << 20) << "the log grew to " << log.size() << " bytes";
  held.clear();
  for (const auto& job : daemon.jobs())
    if (!protocol::is_finished(job.state)) daemon.ctl({"cancel", job.job_id});
}

// ---------------------------------------------------------------------------------------------
// Finding 8: names with ESC, CR, LF, BEL (a fake row, OSC 52 clipboard, OSC 0 title) are refused at
// the daemon; a record that already holds them (an older daemon's) reaches no terminal raw.
TEST(HostileClient, ControlCharactersNeverReachATerminalOrTheLog) {
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const UniqueFd input(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));
  const std::string osc52 = "x\x1b]52;c;ZXZpbA==\x07.wav", fake_row = "a.mp4\r\n0123456789ab  done  uid 0";
  {
    const auto connection = connect_socket(daemon.socket());
    hello(connection.get());
    const int fds[] = {input.get(), input.get()};
    for (const auto& [audio, video] : std::vector<std::pair<std::string, std::string>>{{osc52, "v.mp4"}, {"a.wav", fake_row}}) {
      send_request(connection.get(), submit_request(1, audio, video), fds);
      const auto answer = receive_within(connection.get(), 10s);
      const auto* error = as_error(answer);
      ASSERT_NE(error, nullptr) << describe(answer);
      EXPECT_EQ(error->code, ErrorCode::invalid_argument);
      EXPECT_NE(error->message.find("control character"), std::string::npos) << error->message;
    }
  }
  EXPECT_TRUE(daemon.jobs().empty());
  EXPECT_EQ(daemon.log_text().find('\x1b'), std::string::npos) << "an escape sequence reached the daemon's log";

  // A stored record with such names (written by an older heygemd) is listed with them escaped.
  const auto id = detached_job(daemon, clip);
  ASSERT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  daemon.stop();
  const fs::path record = daemon.state_dir() / "jobs" / (id + ".json");
  auto json = nlohmann::json::parse(read_text(record));
  json["audio"] = osc52;
  json["error"] = "\x1b]0;owned\x07";
  std::ofstream(record, std::ios::trunc) << json.dump();
  daemon.start();
  for (const auto& args : std::vector<std::vector<std::string>>{{"list", "--all"}, {"status", id}}) {
    const auto shown = daemon.ctl(args);
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    for (const char control : {'\x1b', '\x07', '\r'})
      EXPECT_EQ(shown.out.find(control), std::string::npos) << args[0] << " printed control character "
                                                             << static_cast<int>(control) << ": " << shown.out;
    EXPECT_NE(shown.out.find("\\x1b"), std::string::npos) << "the escape is not shown escaped: " << shown.out;
  }
}

// ---------------------------------------------------------------------------------------------
// Finding 10: a stored record with an option this version does not know (as after a downgrade)
// made `list --all` and the job's `status` fail until retention removed it.
TEST(HostileClient, AnUnknownKeyInAStoredRecordIsKeptAndIgnored) {
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto newer = detached_job(daemon, clip), damaged = detached_job(daemon, clip);
  ASSERT_EQ(daemon.ctl({"wait", damaged}).exit_code, 0);
  daemon.stop();
  const auto edit = [&](const std::string& id, const std::function<void(nlohmann::json&)>& change) {
    const fs::path record = daemon.state_dir() / "jobs" / (id + ".json");
    auto json = nlohmann::json::parse(read_text(record));
    change(json);
    std::ofstream(record, std::ios::trunc) << json.dump();
    return record;
  };
  const auto newer_record = edit(newer, [](nlohmann::json& j) { j["options"]["from_the_future"] = 7; });
  edit(damaged, [](nlohmann::json& j) { j["options"]["crf"] = "high"; });
  daemon.start();
  const auto listed = daemon.ctl({"list", "--all"});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find(newer), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(damaged), std::string::npos) << listed.out;
  for (const auto& id : {newer, damaged}) {
    const auto status = daemon.ctl({"status", id});
    EXPECT_EQ(status.exit_code, 0) << id << ": " << status.err;
  }
  EXPECT_NE(read_text(newer_record).find("from_the_future"), std::string::npos) << "the unknown key was dropped";
  EXPECT_EQ(daemon.jobs().size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// Finding 7: another user's many large failed jobs pushed root's `list --all` over 1 MiB ("reply
// could not be encoded", exit 9) for the whole retention time.
TEST(HostileClient, AListingLargerThanAFrameComesInParts) {
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto id = detached_job(daemon, clip);
  ASSERT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  daemon.stop();
  const auto model = nlohmann::json::parse(read_text(daemon.state_dir() / "jobs" / (id + ".json")));
  const std::string long_error(2000, 'e');
  std::vector<std::string> ids;
  for (int j = 0; j < 30; ++j) {  // 30 jobs x 64 items with long names and errors: about 5 MB
    char new_id[16];
    std::snprintf(new_id, sizeof new_id, "%012llx", 0xabc000000000ULL + static_cast<unsigned long long>(j));
    ids.push_back(new_id);
    auto record = model;
    record["id"] = new_id;
    record["sequence"] = 1000 + j;
    record["owner"] = 65534;
    record["state"] = "failed";
    record["error"] = long_error;
    record["items"] = nlohmann::json::array();
    for (int i = 0; i < 64; ++i) {
      auto item = model["items"][0];
      item["video"] = std::string(240, 'n') + std::to_string(i) + ".mp4";
      item["state"] = "failed";
      item["error"] = long_error;
      item["in_spool"] = false;
      record["items"].push_back(item);
    }
    std::ofstream(daemon.state_dir() / "jobs" / (ids.back() + ".json")) << record.dump();
  }
  daemon.start();
  const auto listed = daemon.ctl({"list", "--all"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  for (const auto& each : ids) EXPECT_NE(listed.out.find(each), std::string::npos) << each;
  EXPECT_NE(listed.out.find(id), std::string::npos);
  EXPECT_EQ(daemon.jobs().size(), ids.size() + 1);  // --json: one line per part
  EXPECT_EQ(daemon.ctl({"status", ids.back()}).exit_code, 0);
}

// ---------------------------------------------------------------------------------------------
// Finding 11: SIGHUP while the models load killed heygemd (exit 129, no log line).
TEST(HostileClient, SighupDuringStartUpDoesNotKillTheDaemon) {
  Daemon daemon;
  daemon.stop();
  const auto log_before = daemon.log_text().size();
  daemon.launch();
  const auto deadline = Clock::now() + 120s;
  while (daemon.log_text().find("listening on", log_before) == std::string::npos && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(::kill(daemon.pid(), SIGHUP), 0);
  ASSERT_NO_THROW(daemon.wait_until_ready());
  EXPECT_TRUE(daemon.ping());
  const auto log = daemon.log_text().substr(log_before);
  EXPECT_NE(log.find("SIGHUP"), std::string::npos) << log;
}

// ---------------------------------------------------------------------------------------------
// Finding 12: a damaged record is quarantined; its spool folder (inputs, the result waiting for
// fetch) was deleted as an orphan in the same start.
TEST(HostileClient, AQuarantinedJobKeepsItsFiles) {
  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto id = detached_job(daemon, clip);
  ASSERT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  daemon.stop();
  const fs::path record = daemon.state_dir() / "jobs" / (id + ".json");
  fs::resize_file(record, fs::file_size(record) / 2);
  daemon.start();
  std::vector<fs::path> kept;
  for (const auto& entry : fs::directory_iterator(daemon.state_dir() / "quarantine"))
    if (entry.is_directory()) kept.push_back(entry.path());
  ASSERT_EQ(kept.size(), 1u) << "no spool folder beside the quarantined record";
  EXPECT_EQ(kept[0].filename().string().rfind(id + ".json", 0), 0u) << kept[0];
  EXPECT_TRUE(fs::exists(kept[0] / "audio"));
  EXPECT_TRUE(fs::exists(kept[0] / "video-0"));
  EXPECT_TRUE(is_valid_video(kept[0] / "output-0.mp4")) << "the result waiting for fetch is gone";
  EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
}

// ---------------------------------------------------------------------------------------------
// Finding 9: a job running, kill -9, the state file system full, restart: heygemd exited 1 after
// loading its models ("cannot write .../jobs/ID.json.tmp"), which under systemd is a restart loop.
TEST(HostileClient, AFullStateDiskAtRestartDoesNotStopTheDaemon) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  TempDir mount_point;
  const fs::path state = mount_point.path() / "state";
  fs::create_directories(state);
  if (::mount("tmpfs", state.c_str(), "tmpfs", 0, "size=4m,mode=0755") != 0) GTEST_SKIP() << "cannot mount a tmpfs";
  struct Unmount {
    fs::path where;
    ~Unmount() { ::umount2(where.c_str(), MNT_DETACH); }
  } unmount{state};
  DaemonOptions options;
  options.state_dir = state;
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 4.0);
  const auto id = detached_job(daemon, clip);
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline && daemon.jobs().at(0).state != protocol::JobState::running)
    std::this_thread::sleep_for(20ms);
  daemon.kill9();
  {
    std::ofstream filler(state / "filler", std::ios::binary);
    const std::string chunk(4096, 'x');
    while (filler.write(chunk.data(), static_cast<std::streamsize>(chunk.size()))) {
    }
  }
  ASSERT_NO_THROW(daemon.start()) << "heygemd did not start on a full state disk";
  EXPECT_TRUE(daemon.ping());
  // Its pipeline warm-up item (models.warm_pipeline) found no room either: a warning, no more.
  EXPECT_NE(daemon.log_text().find("[warning] pipeline warm-up on cpu "), std::string::npos) << daemon.log_text();
  const auto status = daemon.ctl({"status", id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  // It says so, and refuses new work until there is room again.
  const auto degraded = daemon.ctl({"--json", "ping"});
  EXPECT_NE(degraded.out.find("\"state\":\"degraded\""), std::string::npos) << degraded.out;
  EXPECT_NE(daemon.log_text().find("No space left on device"), std::string::npos);
  const auto refused = daemon.ctl({"submit", "--detach", "--box", "0,32,0,32", "-a", clip.string(), clip.string()});
  EXPECT_EQ(refused.exit_code, 8) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("refused until its state folder has room again"), std::string::npos) << refused.err;
  fs::remove(state / "filler");
  const auto accepted = daemon.ctl({"submit", "--detach", "--box", "0,32,0,32", "-a", clip.string(), clip.string()});
  EXPECT_EQ(accepted.exit_code, 0) << accepted.err;
  const auto ready = daemon.ctl({"--json", "ping"});
  EXPECT_NE(ready.out.find("\"state\":\"ready\""), std::string::npos) << ready.out;
  const auto waited = daemon.ctl({"wait", id});
  EXPECT_TRUE(waited.exit_code == 0 || waited.exit_code == 1) << waited.out << waited.err;
  EXPECT_TRUE(daemon.ping());
}

// ---------------------------------------------------------------------------------------------
// Finding 6: the result was copied into the client's output while the scheduler's lock was held,
// so a slow output disk (NFS under load, a FUSE mount) froze every client's status and even ping.
// The output here lives on a FUSE file system whose every write takes 3 s.
TEST(HostileClient, ASlowOutputDiskHoldsUpNoOtherClientAndAKilledDeliveryLeavesNothing) {
#ifndef HEYGEM_SLOW_FS_BINARY
  GTEST_SKIP() << "built without libfuse3 (scripts/install-deps.sh installs it): no heygem-slow-fs";
#else
  if (::geteuid() != 0) GTEST_SKIP() << "mounting FUSE needs root";
  TempDir dir;
  const fs::path backing = dir.path() / "backing", mount = dir.path() / "slow", marker = dir.path() / "writing";
  fs::create_directories(backing);
  fs::create_directories(mount);
  const pid_t fs_pid = ::fork();
  if (fs_pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execl(HEYGEM_SLOW_FS_BINARY, HEYGEM_SLOW_FS_BINARY, backing.c_str(), mount.c_str(), "3000", marker.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct Unmount {
    fs::path where;
    pid_t pid;
    ~Unmount() {
      ::umount2(where.c_str(), MNT_DETACH);
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } unmount{mount, fs_pid};
  bool mounted = false;
  for (int i = 0; i < 200 && !mounted; ++i) {
    std::ifstream mounts("/proc/self/mounts");
    for (std::string line; std::getline(mounts, line);)
      mounted |= line.find(" " + mount.string() + " fuse") != std::string::npos;
    if (!mounted) std::this_thread::sleep_for(50ms);
  }
  if (!mounted) GTEST_SKIP() << "cannot mount a FUSE file system here (/dev/fuse?)";

  Daemon daemon;
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 48, 1.0);
  const auto other = detached_job(daemon, clip);
  ASSERT_EQ(daemon.ctl({"wait", other}).exit_code, 0);
  CommandResult slow;
  std::thread client([&] { slow = daemon.ctl(submit_args(clip, clip, {"-o", (mount / "out.mp4").string()})); });
  const auto deadline = Clock::now() + 120s;
  while (!fs::exists(marker) && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(fs::exists(marker)) << "the result never reached the slow disk";
  // The delivery is now inside a 3-s write: everyone else must still be answered at once.
  for (const std::vector<std::string>& request : {std::vector<std::string>{"ping"}, {"status", other}, {"list", "--all"}}) {
    const auto start = Clock::now();
    const auto answer = daemon.ctl(request);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(answer.exit_code, 0) << request.front() << ": " << answer.err;
    EXPECT_LT(seconds, 1.0) << request.front() << " waited " << seconds << " s for the slow delivery";
    std::printf("[slow disk] %s answered in %.3f s during a 3-s write\n", request.front().c_str(), seconds);
  }
  // Finding 13: heygemd killed in the middle of that delivery left a truncated MP4 at -o that
  // players accept. The user's path holds the whole result or nothing.
  daemon.kill9();
  client.join();
  EXPECT_EQ(slow.exit_code, 3) << slow.out << slow.err;
  EXPECT_FALSE(fs::exists(mount / "out.mp4")) << "a partial result was left at -o";
  EXPECT_TRUE(fs::is_empty(backing)) << "heygemctl left its temporary file behind";
#endif
}

// ---------------------------------------------------------------------------------------------
// Also fixed: the avatar cache was shared across uids, so a "hit" told one user that another had
// rendered that exact video.
TEST(HostileClient, TheAvatarCacheTellsNoUidAboutAnothersVideos) {
  const auto other = nobody();
  if (!other) GTEST_SKIP() << "needs root and a 'nobody' user";
  DaemonOptions options;
  options.socket_mode = "0666";
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4";
  make_tiny_clip(clip, 32, 0.4);
  const auto item_cache = [&](const std::string& id) {
    for (const auto& job : daemon.jobs())
      if (job.job_id == id) return job.items.at(0).avatar_cache;
    return std::string("(no such job)");
  };
  const auto detect = [&] {  // no --box: the faces are detected, and cached
    const auto submitted = daemon.ctl({"submit", "--detach", "--audio", clip.string(), clip.string()});
    EXPECT_EQ(submitted.exit_code, 0) << submitted.err;
    const auto id = trim(submitted.out);
    EXPECT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
    return id;
  };
  EXPECT_EQ(item_cache(detect()), "miss");
  // The same video from another uid.
  auto connection = connect_as(*other, daemon.socket(), 1);
  hello(connection[0].get());
  const UniqueFd audio(::open(clip.c_str(), O_RDONLY | O_CLOEXEC)), video(::open(clip.c_str(), O_RDONLY | O_CLOEXEC));
  const int fds[] = {audio.get(), video.get()};
  auto request = submit_request(1);
  request.options.box.reset();
  send_request(connection[0].get(), request, fds);
  const auto submitted = receive_within(connection[0].get(), 60s);
  ASSERT_TRUE(submitted.response && std::holds_alternative<protocol::SubmittedResponse>(*submitted.response))
      << describe(submitted);
  const auto others = std::get<protocol::SubmittedResponse>(*submitted.response).job_id;
  send_request(connection[0].get(), protocol::WaitRequest{others});
  const auto finished = receive_within(connection[0].get(), 600s);
  ASSERT_TRUE(finished.response.has_value()) << describe(finished);
  EXPECT_EQ(item_cache(others), "miss") << "another uid learned that this video was rendered before";
  EXPECT_EQ(item_cache(detect()), "hit") << "the cache no longer works for the same uid";
}

// ---------------------------------------------------------------------------------------------
// Finding 5: queued jobs per uid are bounded, with a refusal naming the limit.
TEST(HostileClient, TheQueueIsBoundedPerUid) {
  DaemonOptions options;
  options.limits = {{"max_queued_jobs_per_uid", "2"}};
  Daemon daemon(options);
  const fs::path clip = daemon.work() / "clip.mp4", long_clip = daemon.work() / "long.mp4";
  make_tiny_clip(clip, 32, 0.4);
  make_tiny_clip(long_clip, 32, 30.0);
  const auto running = detached_job(daemon, long_clip);
  std::vector<std::string> queued;
  for (int i = 0; i < 2; ++i) queued.push_back(detached_job(daemon, clip));
  const auto refused = daemon.ctl(submit_args(clip, clip, {"--detach"}));
  EXPECT_EQ(refused.exit_code, 8) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("limits.max_queued_jobs_per_uid"), std::string::npos) << refused.err;
  daemon.ctl({"cancel", running});
  for (const auto& id : queued) EXPECT_EQ(daemon.ctl({"wait", id}).exit_code, 0);
  EXPECT_EQ(daemon.ctl({"wait", detached_job(daemon, clip)}).exit_code, 0) << "the queue did not open again";
}

}  // namespace
}  // namespace heygem::test
