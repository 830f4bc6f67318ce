#include "common/fd_passing.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/errors.hpp"

namespace heygem {
namespace {

[[noreturn]] void system_failure(const char* what) {
  throw Error(ErrorCode::resource, std::string(what) + ": " + std::strerror(errno));
}

// Writes the rest of `data` after the first chunk went out with the fds.
void send_all(int socket, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t sent = ::send(socket, data, size, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      system_failure("send");
    }
    data += sent;
    size -= static_cast<std::size_t>(sent);
  }
}

// Control buffer big enough for the most fds any frame may carry, aligned for cmsghdr.
union ControlBuffer {
  char bytes[CMSG_SPACE(sizeof(int) * protocol::kMaxFdsPerFrame)];
  cmsghdr align;
};

}  // namespace

void send_frame_with_fds(int socket, std::string_view payload, std::span<const int> fds) {
  if (fds.size() > protocol::kMaxFdsPerFrame)
    throw Error(ErrorCode::protocol, "a frame carries at most " + std::to_string(protocol::kMaxFdsPerFrame) +
                                         " descriptors, not " + std::to_string(fds.size()));
  const std::string frame = protocol::encode_frame(payload);
  iovec chunk{const_cast<char*>(frame.data()), frame.size()};
  msghdr message{};
  message.msg_iov = &chunk;
  message.msg_iovlen = 1;
  ControlBuffer control{};
  if (!fds.empty()) {
    const std::size_t fd_bytes = sizeof(int) * fds.size();
    message.msg_control = control.bytes;
    message.msg_controllen = CMSG_SPACE(fd_bytes);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fd_bytes);
    std::memcpy(CMSG_DATA(header), fds.data(), fd_bytes);
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(socket, &message, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) system_failure("sendmsg");
  send_all(socket, frame.data() + sent, frame.size() - static_cast<std::size_t>(sent));
}

void FrameReceiver::take_fds(std::vector<UniqueFd>& received) {
  for (auto& fd : received) fds_.push_back(std::move(fd));
  if (fds_.size() > max_fds_) {
    const std::size_t count = fds_.size();
    fds_.clear();  // closes them all
    throw Error(ErrorCode::protocol, "frame carried " + std::to_string(count) + " file descriptors, at most " +
                                         std::to_string(max_fds_) + " expected; all were closed");
  }
}

namespace {
constexpr std::size_t kPayloadChunk = std::size_t{64} << 10;
}  // namespace

std::optional<ReceivedFrame> FrameReceiver::read(int socket) {
  char* target;
  std::size_t wanted;
  if (header_bytes_ < protocol::kFrameHeaderBytes) {
    target = reinterpret_cast<char*>(header_) + header_bytes_;
    wanted = protocol::kFrameHeaderBytes - header_bytes_;
  } else {
    // The payload grows with what arrives, so a peer that announces a large frame and sends little
    // of it holds little of the daemon's memory (at most one chunk more than it sent).
    wanted = std::min(payload_size_ - payload_bytes_, kPayloadChunk);
    payload_.resize(payload_bytes_ + wanted);
    target = payload_.data() + payload_bytes_;
  }

  iovec chunk{target, wanted};
  msghdr message{};
  message.msg_iov = &chunk;
  message.msg_iovlen = 1;
  ControlBuffer control{};
  message.msg_control = control.bytes;
  message.msg_controllen = sizeof(control.bytes);
  ssize_t got;
  do {
    got = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
    system_failure("recvmsg");
  }

  // Own every fd that arrived before judging anything, so that each one is closed on any error.
  std::vector<UniqueFd> received;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header; header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (message.msg_flags & MSG_CTRUNC) {
    fds_.clear();
    throw Error(ErrorCode::protocol, "frame carried more file descriptors than fit (control message truncated)");
  }
  take_fds(received);

  if (got == 0) {
    eof_ = true;
    if (in_frame() || !fds_.empty()) {
      fds_.clear();
      throw Error(ErrorCode::protocol, "connection closed in the middle of a frame");
    }
    return std::nullopt;
  }

  if (header_bytes_ < protocol::kFrameHeaderBytes) {
    header_bytes_ += static_cast<std::size_t>(got);
    if (header_bytes_ < protocol::kFrameHeaderBytes) return std::nullopt;
    try {
      payload_size_ = protocol::decode_frame_length(header_);  // before allocating the payload
    } catch (...) {
      fds_.clear();
      throw;
    }
    payload_.clear();
    payload_bytes_ = 0;
    return std::nullopt;
  }

  payload_bytes_ += static_cast<std::size_t>(got);
  payload_.resize(payload_bytes_);
  if (payload_bytes_ < payload_size_) return std::nullopt;
  ReceivedFrame frame{std::move(payload_), std::move(fds_)};
  payload_.clear();
  fds_.clear();
  header_bytes_ = payload_size_ = payload_bytes_ = 0;
  return frame;
}

std::optional<ReceivedFrame> recv_frame_with_fds(int socket, std::size_t max_fds) {
  FrameReceiver receiver(max_fds);
  while (true) {
    if (auto frame = receiver.read(socket)) return frame;
    if (receiver.eof()) return std::nullopt;
  }
}

}  // namespace heygem
