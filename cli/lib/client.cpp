#include "cli/lib/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "cli/lib/cli_error.hpp"
#include "common/fd_passing.hpp"

namespace heygem::cli {
namespace {

// Connects to one socket; returns an invalid fd with `why` set when nobody listens there.
UniqueFd connect_unix(const std::filesystem::path& path, std::string& why) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string text = path.string();
  if (text.size() >= sizeof(address.sun_path))
    throw CliError(ExitCode::usage, "socket path too long (" + std::to_string(text.size()) + " bytes): " + text);
  std::memcpy(address.sun_path, text.c_str(), text.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw CliError(ExitCode::internal, std::string("socket: ") + std::strerror(errno));
  int rc;
  do {
    rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) return fd;
  if (errno == EACCES || errno == EPERM)
    throw CliError(ExitCode::not_found, "permission denied on " + text +
                                            " (the system service's socket needs membership in group heygem)");
  why = text + ": " + std::strerror(errno);
  return UniqueFd{};
}

}  // namespace

Client Client::connect(const std::vector<std::filesystem::path>& sockets, const std::string& client_name,
                       std::optional<std::chrono::milliseconds> timeout) {
  std::string tried;
  for (const auto& path : sockets) {
    std::string why;
    UniqueFd fd = connect_unix(path, why);
    if (fd) return over(std::move(fd), path, client_name, timeout);
    tried += (tried.empty() ? "" : "; ") + why;
  }
  throw CliError(ExitCode::unreachable, "cannot reach heygemd (" + tried + "); is it running? (--socket, HEYGEM_SOCKET)");
}

Client Client::over(UniqueFd socket, std::filesystem::path label, const std::string& client_name,
                    std::optional<std::chrono::milliseconds> timeout) {
  Client client(std::move(socket), std::move(label), timeout);
  client.hello(client_name);
  return client;
}

void Client::hello(const std::string& client_name) {
  const auto answer =
      expect<protocol::HelloResponse>(call(protocol::HelloRequest{protocol::kProtocolVersion, client_name}), "hello");
  if (answer.version != protocol::kProtocolVersion)
    throw Error(ErrorCode::protocol, "heygemd speaks protocol version " + std::to_string(answer.version) +
                                         ", heygemctl speaks " + std::to_string(protocol::kProtocolVersion));
  daemon_version_ = answer.daemon_version;
}

void Client::send(const protocol::Request& request, std::span<const int> fds) {
  try {
    send_frame_with_fds(socket_.get(), protocol::encode(request), fds);
  } catch (const Error& error) {
    if (error.code() != ErrorCode::resource) throw;
    throw CliError(ExitCode::unreachable, "lost the connection to heygemd at " + path_.string() + ": " + error.what());
  }
}

protocol::Response Client::receive() {
  std::optional<ReceivedFrame> frame;
  try {
    frame = recv_frame_with_fds(socket_.get(), 0);
  } catch (const Error& error) {
    if (error.code() != ErrorCode::resource) throw;
    throw CliError(ExitCode::unreachable, "lost the connection to heygemd at " + path_.string() + ": " + error.what());
  }
  if (!frame) throw CliError(ExitCode::unreachable, "heygemd at " + path_.string() + " closed the connection");
  protocol::Response response = protocol::parse_response(frame->payload);
  if (const auto* error = std::get_if<protocol::ErrorResponse>(&response)) throw Error(error->code, error->message);
  return response;
}

protocol::Response Client::call(const protocol::Request& request, std::span<const int> fds) {
  send(request, fds);
  return receive_answer();
}

protocol::Response Client::receive_answer() {
  if (timeout_) {
    pollfd ready{socket_.get(), POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&ready, 1, static_cast<int>(timeout_->count()));
    } while (rc < 0 && errno == EINTR);
    if (rc == 0)
      throw CliError(ExitCode::unreachable, "heygemd at " + path_.string() + " did not answer within " +
                                                std::to_string(timeout_->count() / 1000.0).substr(0, 6) + " s (--timeout)");
  }
  return receive();
}

}  // namespace heygem::cli
