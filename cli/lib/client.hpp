#pragma once
// A small synchronous client: connect, hello, one request at a time, then its responses.
#include <chrono>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/protocol.hpp"
#include "common/unique_fd.hpp"

namespace heygem::cli {

class Client {
 public:
  // Tries each socket in order and says hello on the first that answers. Throws
  // CliError(unreachable) naming the sockets tried, CliError(not_found) when a socket refuses us
  // (EACCES), heygem::Error(protocol) on a version mismatch.
  // With `timeout`, a request whose answer (hello included) does not come in time is
  // CliError(unreachable).
  static Client connect(const std::vector<std::filesystem::path>& sockets, const std::string& client_name,
                        std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  // Over an already connected socket (tests, socket activation); says hello.
  static Client over(UniqueFd socket, std::filesystem::path label, const std::string& client_name,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // Sends a request (with fds beside it for submit and fetch).
  void send(const protocol::Request& request, std::span<const int> fds = {});
  // The next message from the daemon. An error response is thrown as heygem::Error with the daemon's
  // code and message; a connection closed early is CliError(unreachable).
  protocol::Response receive();
  // send + receive, for one-answer requests (bounded by the timeout).
  protocol::Response call(const protocol::Request& request, std::span<const int> fds = {});
  // receive(), bounded by the timeout: the first answer to a streamed request.
  protocol::Response receive_answer();

  const std::string& daemon_version() const { return daemon_version_; }
  const std::filesystem::path& socket_path() const { return path_; }

 private:
  Client(UniqueFd socket, std::filesystem::path path, std::optional<std::chrono::milliseconds> timeout)
      : socket_(std::move(socket)), path_(std::move(path)), timeout_(timeout) {}
  void hello(const std::string& client_name);

  UniqueFd socket_;
  std::filesystem::path path_;
  std::string daemon_version_;
  std::optional<std::chrono::milliseconds> timeout_;
};

// The expected response type, or Error(protocol) naming what came instead.
template <typename T>
T expect(protocol::Response response, std::string_view request_name) {
  if (auto* value = std::get_if<T>(&response)) return std::move(*value);
  throw Error(ErrorCode::protocol, "unexpected '" + std::string(protocol::to_string(protocol::type_of(response))) +
                                       "' in answer to '" + std::string(request_name) + "'");
}

}  // namespace heygem::cli
