#pragma once
// The socket side of heygemd: Boost.Asio on a Unix stream socket, one io thread. Each connection
// gets its peer's credentials (SO_PEERCRED), must say hello first, and sends one request at a time.
// A connection's failure (bad frames, a vanished peer) closes that connection only.
//
// No client can hurt another: connections and the fds held in unfinished frames are capped per uid,
// a new connection must complete its first request and every frame within a deadline, clients as
// a whole never get the last `fd_reserve` fds (running jobs need them), a peer that hangs up while
// it waits on a job is noticed at once, and a refused client reads why.
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/errors.hpp"
#include "common/fd_passing.hpp"
#include "common/peer_credentials.hpp"
#include "daemon/server/dispatcher.hpp"

namespace heygem::server {

struct ServerLimits {
  int max_connections = 256;
  int max_connections_per_uid = 64;
  int max_pending_fds_per_uid = 256;  // fds one uid's unfinished frames may hold at once
  int fd_reserve = 256;               // fds below RLIMIT_NOFILE that clients never get
  std::chrono::milliseconds request_timeout{10'000};  // connect -> first complete request
  std::chrono::milliseconds frame_timeout{30'000};    // a frame's first byte -> its last
};

// At most one log line per `period` for one kind of repeated event; the next line says how many
// were held back, so a flood of refusals or accept errors cannot flood the log.
class LogThrottle {
 public:
  explicit LogThrottle(std::chrono::steady_clock::duration period) : period_(period) {}
  // True when a line may go out now; `held_back` is then the number of lines suppressed before it.
  bool allow(std::size_t& held_back);

 private:
  std::chrono::steady_clock::duration period_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  std::size_t suppressed_ = 0;
};

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `refusal`: the connection is only told why it cannot be served (in answer to its first frame,
  // so that a client that writes hello first reads it), then closed.
  Connection(boost::asio::local::stream_protocol::socket socket, Server& server, PeerCredentials peer,
             std::optional<std::string> refusal);
  void start();
  void stop();  // closes the socket now; pending replies are dropped

  // From any thread: queue a response / complete the current request.
  void post_send(protocol::Response response);
  void post_finish();
  void hold(std::shared_ptr<jobs::EventSink> sink);

  uid_t uid() const { return peer_.uid; }
  bool refused() const { return refusal_.has_value(); }
  std::size_t counted_fds() const { return counted_fds_; }

 private:
  void wait_readable();
  void on_wait(const boost::system::error_code& error);
  void on_readable();
  bool peer_hung_up();
  void watch_while_busy();
  void handle_frame(ReceivedFrame frame);
  // Tells the server what the unfinished frame holds; false when that closed the connection.
  bool account_fds();
  void update_deadline();
  void on_deadline(std::uint64_t generation, const std::string& message);
  void send(const protocol::Response& response);
  void send_error_and_close(ErrorCode code, const std::string& message);
  void write_next();
  void finish_request();

  boost::asio::local::stream_protocol::socket socket_;
  Server& server_;
  PeerCredentials peer_;
  std::optional<std::string> refusal_;
  FrameReceiver receiver_;
  boost::asio::steady_timer deadline_;
  boost::asio::steady_timer hangup_poll_;
  std::chrono::steady_clock::time_point connected_at_;
  enum class Deadline { none, first_request, frame, closing } deadline_kind_ = Deadline::none;
  std::uint64_t deadline_generation_ = 0;
  std::size_t counted_fds_ = 0;  // fds of the unfinished frame, as the server counts them
  bool greeted_ = false;
  bool busy_ = false;          // a request is being answered: the next one waits
  bool wait_armed_ = false;    // an async_wait for readability is outstanding
  bool close_after_write_ = false;
  bool writing_ = false;
  bool stopped_ = false;
  std::deque<std::string> outgoing_;  // encoded frames
  std::vector<std::shared_ptr<jobs::EventSink>> held_;
};

class Server {
 public:
  // Takes ownership of the listening fd (bound and listening).
  Server(boost::asio::io_context& io, int listening_fd, Dispatcher& dispatcher, ServerLimits limits);
  ~Server();
  void start();
  // Stops accepting new connections; existing ones go on (watchers see their jobs out).
  void stop_accepting();
  // Closes every connection.
  void stop_all();
  std::size_t connection_count() const { return connections_.size(); }
  const ServerLimits& limits() const { return limits_; }
  // The most fds all clients together may hold: RLIMIT_NOFILE less limits.fd_reserve.
  std::size_t client_fd_budget() const { return client_fd_budget_; }

 private:
  friend class Connection;
  struct UidUsage {
    int connections = 0;
    std::size_t pending_fds = 0;
  };

  void accept_next();
  void on_accepted(boost::asio::local::stream_protocol::socket socket);
  void on_accept_error(const boost::system::error_code& error);
  std::optional<std::string> refusal_for(uid_t uid) const;
  void remove(const std::shared_ptr<Connection>& connection);
  // A connection's unfinished frame now holds `fds` (was `before`). Returns why it must close, if so.
  std::optional<std::string> pending_fds_changed(uid_t uid, std::size_t before, std::size_t fds);

  boost::asio::io_context& io_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  Dispatcher& dispatcher_;
  ServerLimits limits_;
  std::size_t client_fd_budget_;
  std::size_t client_fds_ = 0;  // sockets of every connection + fds in unfinished frames
  std::set<std::shared_ptr<Connection>> connections_;  // served ones
  std::set<std::shared_ptr<Connection>> refusing_;     // being told why not
  std::map<uid_t, UidUsage> usage_;
  boost::asio::steady_timer accept_retry_;
  std::chrono::milliseconds accept_backoff_{0};
  LogThrottle accept_errors_log_{std::chrono::seconds(10)};
  LogThrottle refusals_log_{std::chrono::seconds(10)};
  LogThrottle protocol_errors_log_{std::chrono::seconds(10)};
};

}  // namespace heygem::server
