// The socket server with a real scheduler (copying executor), listener and dispatcher, driven by a
// raw client over a temporary Unix socket: hello, hostile frames, submit with fds, watch, fetch.
#include "daemon/server/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include "common/fd_passing.hpp"
#include "daemon/server/listener.hpp"
#include "tests/daemon/copy_executor.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::server {
namespace {

using namespace std::chrono_literals;

class PlainServices : public DaemonServices {
 public:
  protocol::ModelsResponse models(const protocol::ModelsRequest&) override { return {}; }
  std::string reload() override { return "nothing to reload"; }
  nlohmann::json validate_options(const protocol::SubmitOptions& options) override { return protocol::to_json(options); }
};

class Client {
 public:
  explicit Client(const std::filesystem::path& socket) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("connect failed");
    timeval timeout{10, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  void send(const protocol::Request& request, std::span<const int> fds = {}) {
    send_frame_with_fds(fd_.get(), protocol::encode(request), fds);
  }
  void send_raw(const std::string& bytes) { ASSERT_EQ(::write(fd_.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())); }
  // The next response, or nullopt when the daemon closed the connection.
  std::optional<protocol::Response> receive() {
    try {
      auto frame = recv_frame_with_fds(fd_.get());
      if (!frame) return std::nullopt;
      return protocol::parse_response(frame->payload);
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  protocol::Response expect() {
    auto response = receive();
    if (!response) throw std::runtime_error("the daemon closed the connection");
    return *response;
  }
  void hello() {
    send(protocol::HelloRequest{protocol::kProtocolVersion, "test"});
    EXPECT_TRUE(std::holds_alternative<protocol::HelloResponse>(expect()));
  }
  bool ping() {
    send(protocol::PingRequest{});
    const auto response = receive();
    return response && std::holds_alternative<protocol::PongResponse>(*response);
  }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

ErrorCode error_code_of(const protocol::Response& response) {
  const auto* error = std::get_if<protocol::ErrorResponse>(&response);
  if (!error) throw std::runtime_error("expected an error, got " + protocol::to_json(response).dump());
  return error->code;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    scheduler_.start();
    auto listener = Listener::bind({socket_, 0660, "", 16});
    listener_ = std::make_unique<Listener>(std::move(listener));
    server_ = std::make_unique<Server>(io_, listener_->release_fd(), dispatcher_, limits_);
    server_->start();
    io_thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    boost::asio::post(io_, [this] { server_->stop_all(); });
    work_.reset();
    io_.stop();
    io_thread_.join();
    scheduler_.shutdown(0ms);
  }
  UniqueFd file_with(const std::string& name, const std::string& content) {
    std::ofstream(dir_.path() / name) << content;
    return UniqueFd(::open((dir_.path() / name).c_str(), O_RDONLY));
  }
  UniqueFd writable(const std::string& name) {
    return UniqueFd(::open((dir_.path() / name).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
  }
  std::string read_file(const std::string& name) {
    std::ifstream in(dir_.path() / name);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }

  // The connections the server holds now (read on its own thread).
  std::size_t connections() {
    std::promise<std::size_t> count;
    boost::asio::post(io_, [&] { count.set_value(server_->connection_count()); });
    return count.get_future().get();
  }

  ServerLimits limits_{.max_connections = 32};
  heygem::test::TempDir dir_;
  std::filesystem::path socket_ = dir_.path() / "run" / "heygemd.sock";
  daemon_test::GatedCopyExecutor executor_;
  jobs::Scheduler scheduler_{dir_.path() / "state", {}, executor_};
  PlainServices services_;
  Dispatcher dispatcher_{scheduler_, services_, {}};
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<Server> server_;
  std::thread io_thread_;
};

TEST_F(ServerTest, SocketHasTheConfiguredModeAndALiveLockRefusesASecondDaemon) {
  struct stat info {};
  ASSERT_EQ(::stat(socket_.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0660u);
  try {
    Listener::bind({socket_, 0660, "", 16});
    FAIL() << "a second daemon bound the socket";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another heygemd is running on " + socket_.string()), std::string::npos)
        << e.what();
  }
  Client client(socket_);  // the first daemon still serves
  client.hello();
  EXPECT_TRUE(client.ping());
}

TEST(Listener, StaleSocketIsReplaced) {
  heygem::test::TempDir dir;
  const auto path = dir.path() / "heygemd.sock";
  { auto first = Listener::bind({path, 0600, "", 4}); }  // released: lock gone
  std::ofstream(path) << "stale";                        // a leftover file where the socket was
  auto second = Listener::bind({path, 0600, "", 4});
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
}

TEST_F(ServerTest, RequestsBeforeHelloAreRefused) {
  Client client(socket_);
  client.send(protocol::PingRequest{});
  const auto response = client.expect();
  EXPECT_EQ(error_code_of(response), ErrorCode::protocol);
  EXPECT_NE(std::get<protocol::ErrorResponse>(response).message.find("hello first"), std::string::npos);
  EXPECT_FALSE(client.receive());  // closed
}

TEST_F(ServerTest, WrongVersionIsRefusedAndClosed) {
  Client client(socket_);
  client.send(protocol::HelloRequest{protocol::kProtocolVersion + 1, "future"});
  const auto response = client.expect();
  EXPECT_EQ(error_code_of(response), ErrorCode::protocol);
  EXPECT_NE(std::get<protocol::ErrorResponse>(response).message.find("unsupported protocol version"), std::string::npos);
  EXPECT_FALSE(client.receive());
}

TEST_F(ServerTest, HostileFramesNeverAffectOtherConnections) {
  Client bystander(socket_);
  bystander.hello();
  {
    Client oversized(socket_);
    oversized.hello();
    oversized.send_raw(std::string("\x7f\xff\xff\xff", 4));
    EXPECT_EQ(error_code_of(oversized.expect()), ErrorCode::protocol);
    EXPECT_FALSE(oversized.receive());
  }
  {
    Client noise(socket_);
    std::mt19937 random(7);
    std::string bytes(4096, '\0');
    for (auto& b : bytes) b = static_cast<char>(random());
    bytes[0] = 0;  // a plausible length so the payload is read as JSON
    bytes[1] = 0;
    bytes[2] = 0x0f;
    bytes[3] = 0xf0;
    noise.send_raw(bytes);
    const auto response = noise.receive();
    if (response) {
      EXPECT_EQ(error_code_of(*response), ErrorCode::protocol);
    }
  }
  {
    Client unknown(socket_);
    unknown.hello();
    unknown.send_raw(protocol::encode_frame(R"({"type":"detonate"})"));
    EXPECT_EQ(error_code_of(unknown.expect()), ErrorCode::protocol);
    EXPECT_TRUE(unknown.ping());  // a well-framed bad message leaves the connection usable
    unknown.send_raw(protocol::encode_frame(R"({"type":"status","job_id":"0123456789ab","output_path":"/etc/shadow"})"));
    EXPECT_EQ(error_code_of(unknown.expect()), ErrorCode::protocol);
    unknown.send(protocol::StatusRequest{"0123456789ab"});
    EXPECT_EQ(error_code_of(unknown.expect()), ErrorCode::not_found);
    unknown.send_raw(protocol::encode_frame("not json at all"));
    EXPECT_EQ(error_code_of(unknown.expect()), ErrorCode::protocol);
  }
  {
    Client cut(socket_);
    cut.hello();
    cut.send_raw(std::string("\x00\x00\x01\x00{\"type\"", 11));  // the peer vanishes mid-frame
  }
  EXPECT_TRUE(bystander.ping());
  Client fresh(socket_);
  fresh.hello();
  EXPECT_TRUE(fresh.ping());
}

TEST_F(ServerTest, SubmitWithFdsThenWatchAndFetch) {
  Client client(socket_);
  client.hello();
  const auto audio = file_with("a.wav", "audio");
  const auto video0 = file_with("v0.mp4", "video 0");
  const auto video1 = file_with("v1.mp4", "video 1");
  const auto out0 = writable("out0.mp4");
  protocol::SubmitRequest submit;
  submit.audio_name = "a.wav";
  submit.item_names = {"v0.mp4", "v1.mp4"};
  submit.fds = submit.expected_fds();
  const int fds[] = {audio.get(), video0.get(), video1.get()};
  client.send(submit, fds);
  const auto submitted = std::get<protocol::SubmittedResponse>(client.expect());
  EXPECT_EQ(submitted.items, 2);

  Client watcher(socket_);
  watcher.hello();
  watcher.send(protocol::WatchRequest{submitted.job_id});
  const auto snapshot = std::get<protocol::JobStatus>(watcher.expect());
  EXPECT_EQ(snapshot.job_id, submitted.job_id);
  executor_.release(2);
  std::vector<std::string> events;
  for (;;) {
    const auto event = std::get<protocol::JobEvent>(watcher.expect());
    events.emplace_back(protocol::event_name(event.body));
    if (protocol::is_terminal(event.body)) break;
  }
  EXPECT_EQ(events.back(), "done");
  EXPECT_EQ(std::count(events.begin(), events.end(), "item_done"), 2);
  EXPECT_TRUE(watcher.ping());  // the request completed; the connection reads again

  client.send(protocol::FetchRequest{submitted.job_id, {1}, 1});
  EXPECT_EQ(error_code_of(client.expect()), ErrorCode::invalid_argument);  // fd missing
  const int target[] = {out0.get()};
  client.send(protocol::FetchRequest{submitted.job_id, {1}, 1}, target);
  const auto fetched = std::get<protocol::FetchedResponse>(client.expect());
  ASSERT_EQ(fetched.items.size(), 1u);
  EXPECT_EQ(fetched.items[0].bytes, 7u);
  EXPECT_EQ(read_file("out0.mp4"), "video 1");

  client.send(protocol::LogsRequest{submitted.job_id});
  const auto logs = std::get<protocol::LogsResponse>(client.expect());
  EXPECT_NE(logs.text.find("item 2 done"), std::string::npos) << logs.text;
  client.send(protocol::WaitRequest{submitted.job_id});  // finished: answered at once
  const auto terminal = std::get<protocol::JobEvent>(client.expect());
  EXPECT_EQ(protocol::event_name(terminal.body), "done");
}

TEST_F(ServerTest, SubmitRefusesAnOutputNotOpenForWriting) {
  Client client(socket_);
  client.hello();
  const auto audio = file_with("a.wav", "audio");
  const auto video = file_with("v.mp4", "video");
  const auto read_only_output = file_with("out.mp4", "");
  protocol::SubmitRequest submit;
  submit.audio_name = "a.wav";
  submit.item_names = {"v.mp4"};
  submit.output_names = {"out.mp4"};
  submit.fds = submit.expected_fds();
  const int fds[] = {audio.get(), video.get(), read_only_output.get()};
  client.send(submit, fds);
  const auto response = client.expect();
  EXPECT_EQ(error_code_of(response), ErrorCode::invalid_argument);
  EXPECT_NE(std::get<protocol::ErrorResponse>(response).message.find("output out.mp4"), std::string::npos);
  EXPECT_TRUE(scheduler_.list(0, true).empty());
}

}  // namespace
}  // namespace heygem::server

namespace heygem::server {
namespace {

// The next response within `limit`, or nullopt (closed or nothing came).
std::optional<protocol::Response> receive_within(Client& client, std::chrono::milliseconds limit) {
  pollfd poll_fd{client.fd(), POLLIN, 0};
  if (::poll(&poll_fd, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
  return client.receive();
}

std::string error_message(const std::optional<protocol::Response>& response) {
  if (!response) return "(nothing)";
  const auto* error = std::get_if<protocol::ErrorResponse>(&*response);
  return error ? error->message : "(not an error: " + protocol::to_json(*response).dump() + ")";
}

// Issue 14, ghost watchers: the daemon reads nothing while it answers a wait, yet a client that
// hangs up must lose its connection at once, not when the job ends.
TEST_F(ServerTest, AWaiterThatHangsUpIsDroppedAtOnce) {
  Client submitter(socket_);
  submitter.hello();
  const auto audio = file_with("a.wav", "audio"), video = file_with("v.mp4", "video");
  protocol::SubmitRequest submit;
  submit.audio_name = "a.wav";
  submit.item_names = {"v.mp4"};
  submit.fds = submit.expected_fds();
  const int fds[] = {audio.get(), video.get()};
  submitter.send(submit, fds);
  const auto job = std::get<protocol::SubmittedResponse>(submitter.expect()).job_id;
  for (int i = 0; i < 20; ++i) {
    Client ghost(socket_);
    ghost.hello();
    ghost.send(protocol::WaitRequest{job});
  }
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (connections() > 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(connections(), 1u) << "hung-up waiters still hold their connections";
  executor_.release(1);
}

class LimitedServerTest : public ServerTest {
 protected:
  LimitedServerTest() {
    limits_.max_connections_per_uid = 2;
    limits_.request_timeout = 300ms;
    limits_.frame_timeout = 300ms;
  }
};

TEST_F(LimitedServerTest, RefusalsAndDeadlinesSayWhy) {
  Client first(socket_), second(socket_);
  first.hello();
  second.hello();
  Client third(socket_);  // one uid, one connection too many
  third.send(protocol::HelloRequest{protocol::kProtocolVersion, "third"});
  const auto refused = receive_within(third, 5s);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(error_code_of(*refused), ErrorCode::resource);
  EXPECT_NE(error_message(refused).find("limits.max_connections_per_uid"), std::string::npos) << error_message(refused);
  // A frame begun and not finished.
  const std::string ping = protocol::encode_frame(protocol::encode(protocol::Request{protocol::PingRequest{}}));
  first.send_raw(ping.substr(0, 3));
  const auto cut = receive_within(first, 5s);
  EXPECT_NE(error_message(cut).find("limits.frame_timeout"), std::string::npos) << error_message(cut);
  // A connection that never says hello.
  second.send(protocol::PingRequest{});  // the other one still serves
  EXPECT_TRUE(std::holds_alternative<protocol::PongResponse>(second.expect()));
  std::this_thread::sleep_for(100ms);
  Client silent(socket_);
  const auto idle = receive_within(silent, 5s);
  EXPECT_NE(error_message(idle).find("limits.request_timeout"), std::string::npos) << error_message(idle);
}

}  // namespace
}  // namespace heygem::server
