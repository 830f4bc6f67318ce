#include "daemon/server/server.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "common/version.hpp"

namespace heygem::server {
namespace {

constexpr std::size_t kMaxQueuedFrames = 4096;  // a peer that stops reading is dropped beyond this

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

Connection::Connection(boost::asio::local::stream_protocol::socket socket, Server& server)
    : socket_(std::move(socket)), server_(server) {}

void Connection::start() {
  try {
    peer_ = peer_credentials(socket_.native_handle());
    socket_.native_non_blocking(true);
  } catch (const std::exception& e) {
    spdlog::warn("connection: {}; closing it", e.what());
    stop();
    return;
  }
  spdlog::debug("connection from pid {} uid {}", peer_.pid, peer_.uid);
  wait_readable();
}

void Connection::stop() {
  if (stopped_) return;
  stopped_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
  held_.clear();
  server_.remove(shared_from_this());
}

void Connection::wait_readable() {
  if (stopped_ || busy_ || close_after_write_) return;
  socket_.async_wait(boost::asio::socket_base::wait_read,
                     [self = shared_from_this()](const boost::system::error_code& error) {
                       if (error) {
                         self->stop();
                         return;
                       }
                       self->on_readable();
                     });
}

void Connection::on_readable() {
  if (stopped_) return;
  std::optional<ReceivedFrame> frame;
  try {
    frame = receiver_.read(socket_.native_handle());
  } catch (const Error& e) {
    // The stream is out of sync (bad length, stray fds, cut frame): say why, then close.
    spdlog::info("connection uid {}: {}; closing it", peer_.uid, e.what());
    send_error_and_close(e.code(), e.what());
    return;
  }
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

void Connection::handle_frame(ReceivedFrame frame) {
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
  if (!writing_) stop();
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

Server::Server(boost::asio::io_context& io, int listening_fd, Dispatcher& dispatcher, int max_connections)
    : io_(io), acceptor_(io), dispatcher_(dispatcher), max_connections_(max_connections) {
  acceptor_.assign(boost::asio::local::stream_protocol(), listening_fd);
}

Server::~Server() { stop_all(); }

void Server::start() { accept_next(); }

void Server::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& error, boost::asio::local::stream_protocol::socket socket) {
    if (error == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!error) {
      if (static_cast<int>(connections_.size()) >= max_connections_) {
        spdlog::warn("server: {} connections open (limits.max_connections); refusing one", connections_.size());
      } else {
        auto connection = std::make_shared<Connection>(std::move(socket), *this);
        connections_.insert(connection);
        connection->start();
      }
    } else {
      spdlog::warn("server: accept failed: {}", error.message());
    }
    accept_next();
  });
}

void Server::stop_accepting() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void Server::stop_all() {
  stop_accepting();
  const auto connections = connections_;
  for (const auto& connection : connections) connection->stop();
  connections_.clear();
}

void Server::remove(const std::shared_ptr<Connection>& connection) { connections_.erase(connection); }

}  // namespace heygem::server
