#pragma once
// The socket side of heygemd: Boost.Asio on a Unix stream socket, one io thread. Each connection
// gets its peer's credentials (SO_PEERCRED), must say hello first, and sends one request at a time.
// A connection's failure (bad frames, a vanished peer) closes that connection only.
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "common/fd_passing.hpp"
#include "common/peer_credentials.hpp"
#include "daemon/server/dispatcher.hpp"

namespace heygem::server {

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::local::stream_protocol::socket socket, Server& server);
  void start();
  void stop();  // closes the socket now; pending replies are dropped

  // From any thread: queue a response / complete the current request.
  void post_send(protocol::Response response);
  void post_finish();
  void hold(std::shared_ptr<jobs::EventSink> sink);

 private:
  void wait_readable();
  void on_readable();
  void handle_frame(ReceivedFrame frame);
  void send(const protocol::Response& response);
  void send_error_and_close(ErrorCode code, const std::string& message);
  void write_next();
  void finish_request();

  boost::asio::local::stream_protocol::socket socket_;
  Server& server_;
  PeerCredentials peer_;
  FrameReceiver receiver_;
  bool greeted_ = false;
  bool busy_ = false;          // a request is being answered: the next one waits
  bool close_after_write_ = false;
  bool writing_ = false;
  bool stopped_ = false;
  std::deque<std::string> outgoing_;  // encoded frames
  std::vector<std::shared_ptr<jobs::EventSink>> held_;
};

class Server {
 public:
  // Takes ownership of the listening fd (bound and listening).
  Server(boost::asio::io_context& io, int listening_fd, Dispatcher& dispatcher, int max_connections);
  ~Server();
  void start();
  // Stops accepting new connections; existing ones go on (watchers see their jobs out).
  void stop_accepting();
  // Closes every connection.
  void stop_all();
  std::size_t connection_count() const { return connections_.size(); }

 private:
  friend class Connection;
  void accept_next();
  void remove(const std::shared_ptr<Connection>& connection);

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  Dispatcher& dispatcher_;
  int max_connections_;
  std::set<std::shared_ptr<Connection>> connections_;
};

}  // namespace heygem::server
