// heygemctl end to end against a scripted peer that speaks the protocol through the real framing
// and fd passing: what the CLI sends (names, fds, options) and how it ends (files, exit codes).
// The real daemon's integration tests live in tests/integration.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "cli/commands/commands.hpp"
#include "cli/lib/exit_codes.hpp"
#include "common/fd_passing.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::cli {
namespace {

using namespace heygem::protocol;

// Listens on a Unix socket and runs `script` on the one connection it accepts.
class ScriptedPeer {
 public:
  ScriptedPeer(const std::filesystem::path& path, std::function<void(int)> script) {
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::listen(listener_.get(), 1) != 0)
      throw std::runtime_error("cannot listen on " + path.string());
    thread_ = std::thread([this, script = std::move(script)] {
      // Bounded waits, so a client that never comes fails the test instead of hanging it.
      pollfd waiting{listener_.get(), POLLIN, 0};
      if (::poll(&waiting, 1, 10'000) != 1) {
        failure_ = "the client never connected";
        return;
      }
      UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      const timeval timeout{10, 0};
      ::setsockopt(connection.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      try {
        script(connection.get());
      } catch (const std::exception& error) {
        failure_ = error.what();
      }
    });
  }
  ~ScriptedPeer() {
    thread_.join();
    EXPECT_EQ(failure_, "") << "scripted peer";
  }
  const std::string& failure() const { return failure_; }

 private:
  UniqueFd listener_;
  std::thread thread_;
  std::string failure_;
};

struct Incoming {
  Request request;
  std::vector<UniqueFd> fds;
};

Incoming receive(int connection) {
  auto frame = recv_frame_with_fds(connection);
  if (!frame) throw std::runtime_error("client closed the connection");
  Incoming incoming{parse_request(frame->payload), std::move(frame->fds)};
  if (incoming.fds.size() != expected_fds(incoming.request)) throw std::runtime_error("fd count differs from the request");
  return incoming;
}

void reply(int connection, const Response& response) { send_frame_with_fds(connection, encode(response)); }

void answer_hello(int connection) {
  const auto hello = std::get<HelloRequest>(receive(connection).request);
  if (hello.version != kProtocolVersion) throw std::runtime_error("client sent another version");
  reply(connection, HelloResponse{kProtocolVersion, "scripted"});
}

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  ::lseek(fd, 0, SEEK_SET);
  for (ssize_t got; (got = ::read(fd, buffer, sizeof buffer)) > 0;) text.append(buffer, static_cast<std::size_t>(got));
  return text;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Fixture {
  test::TempDir dir;
  std::filesystem::path socket = dir.path() / "heygemd.sock";
  std::ostringstream out, err;

  Fixture() {
    std::ofstream(dir.path() / "speech.wav", std::ios::binary) << "audio bytes";
    std::ofstream(dir.path() / "face.mp4", std::ios::binary) << "video bytes";
  }

  int run_cli(std::vector<std::string> args) {
    args.insert(args.begin(), "heygemctl");
    std::vector<const char*> argv;
    for (const auto& arg : args) argv.push_back(arg.c_str());
    Io io{out, err, false, SocketEnvironment{socket.string(), "", ::getuid()}, dir.path()};
    return run(static_cast<int>(argv.size()), argv.data(), io);
  }

  JobStatus snapshot(const SubmitRequest& submit) const {
    JobStatus job;
    job.job_id = "abcdefabcdef";
    job.audio_name = submit.audio_name;
    for (const auto& name : submit.item_names) {
      ItemStatus item;
      item.name = name;
      job.items.push_back(item);
    }
    return job;
  }
};

TEST(ClientEndToEnd, SubmitPassesDescriptorsAndKeepsTheFinishedOutput) {
  Fixture f;
  SubmitRequest seen;
  std::string audio_seen, video_seen;
  {
    ScriptedPeer peer(f.socket, [&](int connection) {
      answer_hello(connection);
      Incoming submit = receive(connection);
      seen = std::get<SubmitRequest>(submit.request);
      audio_seen = read_all(submit.fds[0].get());
      video_seen = read_all(submit.fds[1].get());
      const std::string mp4 = "finished mp4";
      if (::write(submit.fds[2].get(), mp4.data(), mp4.size()) != static_cast<ssize_t>(mp4.size()))
        throw std::runtime_error("output fd is not writable");
      reply(connection, SubmittedResponse{"abcdefabcdef", 1});
      std::get<WatchRequest>(receive(connection).request);
      reply(connection, f.snapshot(seen));
      reply(connection, JobEvent{"abcdefabcdef", RunningEvent{0, 1, "render", 5, 10, 20, 0.25}});
      reply(connection, JobEvent{"abcdefabcdef", ItemDoneEvent{0, OutputPlace::fd, 10, 0, 0.5, 20}});
      reply(connection, JobEvent{"abcdefabcdef", DoneEvent{{OutputPlace::fd}, 10, 0, 0.5, 20}});
    });
    const int code = f.run_cli({"submit", "--audio", (f.dir.path() / "speech.wav").string(),
                                (f.dir.path() / "face.mp4").string(), "--blend", "hard"});
    EXPECT_EQ(code, 0) << f.err.str();
  }
  EXPECT_EQ(seen.audio_name, "speech.wav");
  EXPECT_EQ(seen.item_names, std::vector<std::string>{"face.mp4"});
  EXPECT_EQ(seen.output_names, std::vector<std::string>{"face.lipsync.mp4"});
  EXPECT_EQ(seen.options.blend, Blend::hard);
  EXPECT_EQ(audio_seen, read_file(f.dir.path() / "speech.wav"));
  EXPECT_EQ(video_seen, read_file(f.dir.path() / "face.mp4"));
  EXPECT_EQ(read_file(f.dir.path() / "face.lipsync.mp4"), "finished mp4");  // default output: cwd
  EXPECT_NE(f.out.str().find("done: 1 output"), std::string::npos) << f.out.str();
}

TEST(ClientEndToEnd, FailedJobLeavesNoOutputAndExitsOne) {
  Fixture f;
  {
    ScriptedPeer peer(f.socket, [&](int connection) {
      answer_hello(connection);
      const auto submit = std::get<SubmitRequest>(receive(connection).request);
      reply(connection, SubmittedResponse{"abcdefabcdef", 1});
      receive(connection);
      reply(connection, f.snapshot(submit));
      reply(connection, JobEvent{"abcdefabcdef", FailedEvent{"face.mp4: no video stream"}});
    });
    EXPECT_EQ(f.run_cli({"submit", "-q", "-a", "speech.wav", "face.mp4", "-o", "result.mp4"}),
              to_int(ExitCode::job_failed));
  }
  EXPECT_FALSE(std::filesystem::exists(f.dir.path() / "result.mp4"));
  EXPECT_EQ(f.out.str(), "");  // --quiet
}

TEST(ClientEndToEnd, ExistingOutputIsRefusedBeforeConnecting) {
  Fixture f;
  std::ofstream(f.dir.path() / "face.lipsync.mp4") << "keep me";
  // No daemon listens: the refusal must come first, with its own exit code.
  EXPECT_EQ(f.run_cli({"submit", "-a", "speech.wav", "face.mp4"}), to_int(ExitCode::local_file));
  EXPECT_NE(f.err.str().find("exists (use --force to overwrite)"), std::string::npos) << f.err.str();
  EXPECT_EQ(read_file(f.dir.path() / "face.lipsync.mp4"), "keep me");
}

TEST(ClientEndToEnd, NoDaemonIsExitThree) {
  Fixture f;
  EXPECT_EQ(f.run_cli({"ping"}), to_int(ExitCode::unreachable));
  EXPECT_NE(f.err.str().find(f.socket.string()), std::string::npos);
}

TEST(ClientEndToEnd, VersionMismatchIsAProtocolError) {
  Fixture f;
  {
    ScriptedPeer peer(f.socket, [&](int connection) {
      receive(connection);
      reply(connection, ErrorResponse{ErrorCode::protocol, "unsupported protocol version 1 (daemon speaks 2)"});
    });
    EXPECT_EQ(f.run_cli({"ping"}), to_int(ExitCode::protocol));
  }
  EXPECT_NE(f.err.str().find("unsupported protocol version"), std::string::npos);
}

TEST(ClientEndToEnd, WaitEndsWithTheJobsExitCode) {
  Fixture f;
  {
    ScriptedPeer peer(f.socket, [&](int connection) {
      answer_hello(connection);
      const auto wait = std::get<WaitRequest>(receive(connection).request);
      reply(connection, JobEvent{wait.job_id, CancelledEvent{}});
    });
    EXPECT_EQ(f.run_cli({"wait", "0123456789ab", "--json"}), to_int(ExitCode::cancelled));
  }
  const auto event = std::get<JobEvent>(parse_response(f.out.str()));
  EXPECT_EQ(event.job_id, "0123456789ab");
}

TEST(ClientEndToEnd, DaemonErrorsMapToExitCodes) {
  Fixture f;
  {
    ScriptedPeer peer(f.socket, [&](int connection) {
      answer_hello(connection);
      receive(connection);
      reply(connection, ErrorResponse{ErrorCode::not_found, "no job 0123456789ab"});
    });
    EXPECT_EQ(f.run_cli({"cancel", "0123456789ab"}), to_int(ExitCode::not_found));
  }
  EXPECT_NE(f.err.str().find("no job 0123456789ab"), std::string::npos);
}

}  // namespace
}  // namespace heygem::cli
