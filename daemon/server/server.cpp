#include "daemon/server/server.hpp"

#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/version.hpp"

namespace heygem::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxQueuedFrames = 4096;  // a peer that stops reading is dropped beyond this
// Refused peers wait for their first frame to be told why; beyond this many at once they are closed
// without a word (each one holds a socket, and refusals happen when fds or slots are short).
constexpr std::size_t kMaxRefusing = 16;
constexpr auto kRefusalWait = std::chrono::milliseconds(2000);
// A connection closing after an error gets this long to take its last reply.
constexpr auto kClosingWait = std::chrono::milliseconds(5000);
// While a request is answered and the peer has sent more, its hang-up is looked for this often.
constexpr auto kHangupPoll = std::chrono::seconds(1);
constexpr auto kFirstAcceptBackoff = std::chrono::milliseconds(50);
constexpr auto kMaxAcceptBackoff = std::chrono::milliseconds(1000);

std::string seconds_text(std::chrono::milliseconds duration) {
  return fmt::format("{:g} s", static_cast<double>(duration.count()) / 1000.0);
}

std::string held_back_text(std::size_t held_back) {
  return held_back ? fmt::format(" ({} more like it since the last line)", held_back) : std::string();
}

// RLIMIT_NOFILE less the reserve: what all clients together may hold.
std::size_t client_fd_budget_for(int reserve) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return std::numeric_limits<std::size_t>::max() / 2;
  const auto soft = static_cast<std::size_t>(limit.rlim_cur);
  const auto kept = static_cast<std::size_t>(std::max(reserve, 0));
  // A reserve larger than the table leaves clients half of it rather than nothing.
  return soft > kept ? soft - kept : soft / 2;
}

// The connection's side of a request's replies, usable from any thread.
class ConnectionReplies : public Replies {
 public:
  explicit ConnectionReplies(std::weak_ptr<Connection> connection) : connection_(std::move(connection)) {}
  void send(protocol::Response response) override {
    if (const auto c = connection_.lock()) c->post_send(std::move(response));
  }
  void finish() override {
    if (const auto c = connection_.lock()) c->post_finish();
  }
  void hold(std::shared_ptr<jobs::EventSink> sink) override {
    if (const auto c = connection_.lock()) c->hold(std::move(sink));
  }

 private:
  std::weak_ptr<Connection> connection_;
};

}  // namespace

bool LogThrottle::allow(std::size_t& held_back) {
  const auto now = Clock::now();
  if (last_ && now - *last_ < period_) {
    ++suppressed_;
    return false;
  }
  last_ = now;
  held_back = std::exchange(suppressed_, 0);
  return true;
}

Connection::Connection(boost::asio::local::stream_protocol::socket socket, Server& server, PeerCredentials peer,
                       std::optional<std::string> refusal)
    : socket_(std::move(socket)),
      server_(server),
      peer_(peer),
      refusal_(std::move(refusal)),
      deadline_(socket_.get_executor()),
      hangup_poll_(socket_.get_executor()),
      connected_at_(Clock::now()) {}

void Connection::start() {
  try {
    socket_.native_non_blocking(true);
  } catch (const std::exception& e) {
    spdlog::warn("connection: {}; closing it", e.what());
    stop();
    return;
  }
  spdlog::debug("connection from pid {} uid {}{}", peer_.pid, peer_.uid, refusal_ ? " (refused)" : "");
  wait_readable();
}

void Connection::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  deadline_.cancel();
  hangup_poll_.cancel();
  held_.clear();
  receiver_ = FrameReceiver();  // the fds of an unfinished frame close now, not with the last handler
  server_.remove(shared_from_this());
  counted_fds_ = 0;
}

void Connection::wait_readable() {
  update_deadline();
  if (stopped_ || close_after_write_ || wait_armed_) return;
  wait_armed_ = true;
  socket_.async_wait(boost::asio::socket_base::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& error) { self->on_wait(error); });
}

void Connection::on_wait(const boost::system::error_code& error) {
  wait_armed_ = false;
  if (stopped_) return;
  if (error) {
    stop();
    return;
  }
  if (busy_) {
    watch_while_busy();
    return;
  }
  on_readable();
}

bool Connection::peer_hung_up() {
  pollfd poll_fd{socket_.native_handle(), POLLIN | POLLRDHUP, 0};
  if (::poll(&poll_fd, 1, 0) <= 0) return false;
  return (poll_fd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

// Nothing is read while a request is answered (a wait may last hours), but a peer that hangs up
// must not keep its slot and fds until the job ends: readable now means a hang-up or a request
// sent ahead, which stays in the socket until its turn.
void Connection::watch_while_busy() {
  if (peer_hung_up()) {
    spdlog::debug("connection uid {}: the peer hung up while its request was answered; closing it", peer_.uid);
    stop();
    return;
  }
  hangup_poll_.expires_after(kHangupPoll);
  hangup_poll_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
    if (error || self->stopped_ || !self->busy_) return;  // finished: reading resumed in finish_request
    self->watch_while_busy();
  });
}

void Connection::on_readable() {
  if (stopped_) return;
  std::optional<ReceivedFrame> frame;
  try {
    frame = receiver_.read(socket_.native_handle());
  } catch (const Error& e) {
    // The stream is out of sync (bad length, stray fds, cut frame): say why, then close.
    account_fds();
    std::size_t held_back = 0;
    if (server_.protocol_errors_log_.allow(held_back))
      spdlog::info("connection uid {}: {}; closing it{}", peer_.uid, e.what(), held_back_text(held_back));
    send_error_and_close(e.code(), e.what());
    return;
  }
  if (!account_fds()) return;
  if (!frame) {
    if (receiver_.eof()) {
      stop();
      return;
    }
    wait_readable();
    return;
  }
  handle_frame(std::move(*frame));
}

bool Connection::account_fds() {
  const std::size_t held = receiver_.held_fds();
  if (held == counted_fds_) return true;
  const std::size_t before = std::exchange(counted_fds_, held);
  const auto refusal = server_.pending_fds_changed(peer_.uid, before, held);
  if (!refusal) return true;
  receiver_ = FrameReceiver();  // closes them now
  server_.pending_fds_changed(peer_.uid, counted_fds_, 0);
  counted_fds_ = 0;
  std::size_t held_back = 0;
  if (server_.refusals_log_.allow(held_back))
    spdlog::warn("connection uid {}: {}{}", peer_.uid, *refusal, held_back_text(held_back));
  send_error_and_close(ErrorCode::resource, *refusal);
  return false;
}

void Connection::update_deadline() {
  if (stopped_) return;
  Deadline wanted = Deadline::none;
  if (close_after_write_)
    wanted = Deadline::closing;
  else if (busy_)
    wanted = Deadline::none;
  else if (!greeted_)
    wanted = Deadline::first_request;
  else if (receiver_.in_frame())
    wanted = Deadline::frame;
  if (wanted == deadline_kind_) return;  // a frame's deadline counts from its first byte
  deadline_kind_ = wanted;
  const auto generation = ++deadline_generation_;
  deadline_.cancel();
  if (wanted == Deadline::none) return;
  const auto& limits = server_.limits();
  std::string message;
  switch (wanted) {
    case Deadline::first_request:
      if (refusal_) {
        deadline_.expires_at(connected_at_ + std::min<Clock::duration>(limits.request_timeout, kRefusalWait));
        message = *refusal_;
      } else {
        deadline_.expires_at(connected_at_ + limits.request_timeout);
        message = "no complete request within " + seconds_text(limits.request_timeout) +
                  " of connecting (limits.request_timeout); closing the connection";
      }
      break;
    case Deadline::frame:
      deadline_.expires_after(limits.frame_timeout);
      message = "a frame was not complete within " + seconds_text(limits.frame_timeout) +
                " of its first byte (limits.frame_timeout); closing the connection";
      break;
    case Deadline::closing:
      deadline_.expires_after(kClosingWait);
      break;
    case Deadline::none:
      break;
  }
  deadline_.async_wait([self = shared_from_this(), generation, message](const boost::system::error_code& error) {
    if (!error) self->on_deadline(generation, message);
  });
}

void Connection::on_deadline(std::uint64_t generation, const std::string& message) {
  if (stopped_ || generation != deadline_generation_) return;
  if (deadline_kind_ == Deadline::closing) {  // the peer does not take its last reply
    stop();
    return;
  }
  if (!refusal_) {
    std::size_t held_back = 0;
    if (server_.protocol_errors_log_.allow(held_back))
      spdlog::info("connection uid {}: {}{}", peer_.uid, message, held_back_text(held_back));
  }
  send_error_and_close(refusal_ ? ErrorCode::resource : ErrorCode::protocol, message);
}

void Connection::handle_frame(ReceivedFrame frame) {
  if (refusal_) {
    send_error_and_close(ErrorCode::resource, *refusal_);
    return;
  }
  protocol::Request request;
  try {
    request = protocol::parse_request(frame.payload);
  } catch (const Error& e) {
    if (!greeted_) {
      send_error_and_close(e.code(), e.what());
      return;
    }
    send(protocol::ErrorResponse{e.code(), e.what()});
    wait_readable();
    return;
  }
  if (!greeted_) {
    const auto* hello = std::get_if<protocol::HelloRequest>(&request);
    if (!hello) {
      send_error_and_close(ErrorCode::protocol, "hello first");
      return;
    }
    try {
      protocol::require_supported_version(hello->version);
    } catch (const Error& e) {
      send_error_and_close(e.code(), e.what());
      return;
    }
    if (!frame.fds.empty()) {
      send_error_and_close(ErrorCode::protocol, "hello carries no file descriptors");
      return;
    }
    greeted_ = true;
    send(protocol::HelloResponse{protocol::kProtocolVersion, std::string(heygem_version())});
    wait_readable();
    return;
  }
  if (frame.fds.size() != protocol::expected_fds(request)) {
    const bool carries = protocol::expected_fds(request) > 0;
    send(protocol::ErrorResponse{
        carries ? ErrorCode::invalid_argument : ErrorCode::protocol,
        std::string(protocol::to_string(protocol::type_of(request))) + ": the frame carries " +
            std::to_string(frame.fds.size()) + " file descriptors, expected " +
            std::to_string(protocol::expected_fds(request))});
    wait_readable();  // the fds close with `frame`
    return;
  }
  busy_ = true;
  server_.dispatcher_.dispatch(std::move(request), std::move(frame.fds), peer_,
                               std::make_shared<ConnectionReplies>(weak_from_this()));
  wait_readable();  // for a hang-up while the request is answered
}

void Connection::post_send(protocol::Response response) {
  boost::asio::post(socket_.get_executor(), [self = shared_from_this(), response = std::move(response)] {
    self->send(response);
  });
}

void Connection::post_finish() {
  boost::asio::post(socket_.get_executor(), [self = shared_from_this()] { self->finish_request(); });
}

void Connection::hold(std::shared_ptr<jobs::EventSink> sink) {
  boost::asio::post(socket_.get_executor(), [self = shared_from_this(), sink = std::move(sink)]() mutable {
    if (!self->stopped_ && self->busy_) self->held_.push_back(std::move(sink));
  });
}

void Connection::finish_request() {
  if (stopped_ || !busy_) return;
  busy_ = false;
  held_.clear();
  hangup_poll_.cancel();
  wait_readable();
}

void Connection::send(const protocol::Response& response) {
  if (stopped_ || close_after_write_) return;
  if (outgoing_.size() >= kMaxQueuedFrames) {
    spdlog::warn("connection uid {}: the peer does not read its replies; closing it", peer_.uid);
    stop();
    return;
  }
  try {
    outgoing_.push_back(protocol::encode_frame(protocol::encode(response)));
  } catch (const std::exception& e) {
    spdlog::error("connection uid {}: cannot encode a reply: {}", peer_.uid, e.what());
    outgoing_.push_back(protocol::encode_frame(
        protocol::encode(protocol::Response{protocol::ErrorResponse{ErrorCode::internal, "reply could not be encoded"}})));
  }
  write_next();
}

void Connection::send_error_and_close(ErrorCode code, const std::string& message) {
  send(protocol::ErrorResponse{code, message});
  close_after_write_ = true;
  if (!writing_) {
    stop();
    return;
  }
  update_deadline();
}

void Connection::write_next() {
  if (writing_ || stopped_) return;
  if (outgoing_.empty()) {
    if (close_after_write_) stop();
    return;
  }
  writing_ = true;
  boost::asio::async_write(socket_, boost::asio::buffer(outgoing_.front()),
                           [self = shared_from_this()](const boost::system::error_code& error, std::size_t) {
                             self->writing_ = false;
                             if (error) {
                               self->stop();
                               return;
                             }
                             self->outgoing_.pop_front();
                             self->write_next();
                           });
}

Server::Server(boost::asio::io_context& io, int listening_fd, Dispatcher& dispatcher, ServerLimits limits)
    : io_(io),
      acceptor_(io),
      dispatcher_(dispatcher),
      limits_(limits),
      client_fd_budget_(client_fd_budget_for(limits.fd_reserve)),
      accept_retry_(io) {
  acceptor_.assign(boost::asio::local::stream_protocol(), listening_fd);
}

Server::~Server() { stop_all(); }

void Server::start() {
  spdlog::info("server: at most {} connections ({} per uid), {} fds in one uid's unfinished frames, {} fds for all clients",
               limits_.max_connections, limits_.max_connections_per_uid, limits_.max_pending_fds_per_uid,
               client_fd_budget_);
  accept_next();
}

void Server::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& error, boost::asio::local::stream_protocol::socket socket) {
    if (error == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (error) {
      on_accept_error(error);
      return;
    }
    accept_backoff_ = std::chrono::milliseconds(0);
    on_accepted(std::move(socket));
    accept_next();
  });
}

void Server::on_accept_error(const boost::system::error_code& error) {
  const int code = error.value();
  const bool out_of_fds = code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
  std::size_t held_back = 0;
  if (accept_errors_log_.allow(held_back))
    spdlog::warn("server: accept failed: {}{}", error.message(), held_back_text(held_back));
  if (!out_of_fds) {
    accept_next();
    return;
  }
  // The listening socket stays readable while the fd table is full: wait instead of spinning.
  accept_backoff_ = accept_backoff_.count() == 0 ? kFirstAcceptBackoff : std::min(accept_backoff_ * 2, kMaxAcceptBackoff);
  accept_retry_.expires_after(accept_backoff_);
  accept_retry_.async_wait([this](const boost::system::error_code& wait_error) {
    if (wait_error || !acceptor_.is_open()) return;
    accept_next();
  });
}

std::optional<std::string> Server::refusal_for(uid_t uid) const {
  if (static_cast<int>(connections_.size()) >= limits_.max_connections)
    return "heygemd has " + std::to_string(connections_.size()) +
           " connections open (limits.max_connections); try again later";
  const auto usage = usage_.find(uid);
  if (usage != usage_.end() && usage->second.connections >= limits_.max_connections_per_uid)
    return "uid " + std::to_string(uid) + " has " + std::to_string(usage->second.connections) +
           " connections open (limits.max_connections_per_uid); close some or try again later";
  if (client_fds_ + 1 > client_fd_budget_)
    return "heygemd is short of file descriptors (clients hold " + std::to_string(client_fds_) + " of the " +
           std::to_string(client_fd_budget_) + " it grants them: RLIMIT_NOFILE less limits.fd_reserve); try again later";
  return std::nullopt;
}

void Server::on_accepted(boost::asio::local::stream_protocol::socket socket) {
  PeerCredentials peer;
  try {
    peer = peer_credentials(socket.native_handle());
  } catch (const std::exception& e) {
    spdlog::warn("connection: {}; closing it", e.what());
    return;
  }
  auto refusal = refusal_for(peer.uid);
  if (refusal) {
    std::size_t held_back = 0;
    if (refusals_log_.allow(held_back))
      spdlog::warn("server: refusing a connection of uid {}: {}{}", peer.uid, *refusal, held_back_text(held_back));
    if (refusing_.size() >= kMaxRefusing) return;  // closed without a word: too many wait for theirs
    auto connection = std::make_shared<Connection>(std::move(socket), *this, peer, std::move(refusal));
    refusing_.insert(connection);
    ++client_fds_;
    connection->start();
    return;
  }
  auto connection = std::make_shared<Connection>(std::move(socket), *this, peer, std::nullopt);
  connections_.insert(connection);
  ++usage_[peer.uid].connections;
  ++client_fds_;
  connection->start();
}

std::optional<std::string> Server::pending_fds_changed(uid_t uid, std::size_t before, std::size_t fds) {
  auto& usage = usage_[uid];
  usage.pending_fds = usage.pending_fds + fds - std::min(before, usage.pending_fds);
  client_fds_ = client_fds_ + fds - std::min(before, client_fds_);
  if (fds <= before) {
    if (usage.connections == 0 && usage.pending_fds == 0) usage_.erase(uid);
    return std::nullopt;
  }
  if (usage.pending_fds > static_cast<std::size_t>(limits_.max_pending_fds_per_uid))
    return "uid " + std::to_string(uid) + " holds " + std::to_string(usage.pending_fds) +
           " file descriptors in unfinished frames, more than limits.max_pending_fds_per_uid (" +
           std::to_string(limits_.max_pending_fds_per_uid) + "); closing this connection";
  if (client_fds_ > client_fd_budget_)
    return "heygemd is short of file descriptors (clients hold " + std::to_string(client_fds_) + " of the " +
           std::to_string(client_fd_budget_) + " it grants them: RLIMIT_NOFILE less limits.fd_reserve); closing this connection";
  return std::nullopt;
}

void Server::stop_accepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
}

void Server::stop_all() {
  stop_accepting();
  for (const auto& set : {connections_, refusing_})
    for (const auto& connection : set) connection->stop();
  connections_.clear();
  refusing_.clear();
  usage_.clear();
  client_fds_ = 0;
}

void Server::remove(const std::shared_ptr<Connection>& connection) {
  const bool was_refusing = refusing_.erase(connection) > 0;
  const bool was_serving = !was_refusing && connections_.erase(connection) > 0;
  if (!was_refusing && !was_serving) return;
  const std::size_t fds = 1 + connection->counted_fds();
  client_fds_ -= std::min(fds, client_fds_);
  const auto usage = usage_.find(connection->uid());
  if (usage == usage_.end()) return;
  if (was_serving) --usage->second.connections;
  usage->second.pending_fds -= std::min(connection->counted_fds(), usage->second.pending_fds);
  if (usage->second.connections <= 0 && usage->second.pending_fds == 0) usage_.erase(usage);
}

}  // namespace heygem::server
