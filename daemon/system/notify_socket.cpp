#include "daemon/system/notify_socket.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "common/errors.hpp"

namespace heygem::system {
namespace {

// Closes the socket on every path out of send_notify_datagram.
class SocketFd {
 public:
  SocketFd() : fd_(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~SocketFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketFd(const SocketFd&) = delete;
  SocketFd& operator=(const SocketFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct UnixAddress {
  sockaddr_un address{};
  socklen_t length = 0;
};

UnixAddress unix_address(const std::string& socket_path) {
  UnixAddress result;
  result.address.sun_family = AF_UNIX;
  const bool abstract = !socket_path.empty() && socket_path.front() == '@';
  if (socket_path.empty() || (!abstract && socket_path.front() != '/'))
    throw Error(ErrorCode::invalid_argument,
                "NOTIFY_SOCKET: expected an absolute path or an '@' abstract name, got '" + socket_path + "'");
  if (socket_path.size() >= sizeof(result.address.sun_path))
    throw Error(ErrorCode::invalid_argument, "NOTIFY_SOCKET: path too long for a unix socket: " + socket_path);
  std::memcpy(result.address.sun_path, socket_path.data(), socket_path.size());
  // An abstract name starts with a NUL byte and is not NUL-terminated: its length is exact.
  if (abstract) result.address.sun_path[0] = '\0';
  result.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size() + (abstract ? 0 : 1));
  return result;
}

}  // namespace

void send_notify_datagram(const std::string& socket_path, const std::string& message) {
  const UnixAddress target = unix_address(socket_path);
  SocketFd fd;
  if (fd.get() < 0)
    throw Error(ErrorCode::resource, "NOTIFY_SOCKET " + socket_path + ": socket: " + std::strerror(errno));
  // MSG_DONTWAIT: a receiver that stopped reading (its queue full) must cost a lost notification,
  // not a daemon thread blocked in sendto.
  const auto sent = ::sendto(fd.get(), message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                             reinterpret_cast<const sockaddr*>(&target.address), target.length);
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    throw Error(ErrorCode::resource, "NOTIFY_SOCKET " + socket_path + ": the receiver's queue is full (not sent)");
  if (sent < 0)
    throw Error(ErrorCode::resource, "NOTIFY_SOCKET " + socket_path + ": send: " + std::strerror(errno));
  if (static_cast<std::size_t>(sent) != message.size())
    throw Error(ErrorCode::resource, "NOTIFY_SOCKET " + socket_path + ": short send");
}

}  // namespace heygem::system
