#pragma once
// Frames with file descriptors beside them over a Unix stream socket (SCM_RIGHTS).
//
// The sender attaches every fd to the first bytes of the frame (its header), in one sendmsg. The
// receiver reads exactly one frame (never a byte of the next one, so fds can't be mistaken for the
// next frame's), takes the fds with MSG_CMSG_CLOEXEC, and owns them at once: any fd beyond what the
// caller allows, or a truncated control message, closes them all and fails the frame.
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "common/unique_fd.hpp"

namespace heygem {

struct ReceivedFrame {
  std::string payload;
  std::vector<UniqueFd> fds;
};

// Writes header + payload; `fds` ride along with the first chunk. Blocks until everything is
// written (the socket must be blocking). Throws Error(protocol) for a bad payload size or too many
// fds, Error(resource) when the peer is gone or the write fails.
void send_frame_with_fds(int socket, std::string_view payload, std::span<const int> fds = {});

// Incremental receiver, usable on blocking and non-blocking sockets: each call to read() makes at
// most one recvmsg, never past the current frame. The payload buffer grows with the bytes received
// (64 KiB at a time), not with the length a peer announces.
class FrameReceiver {
 public:
  explicit FrameReceiver(std::size_t max_fds = protocol::kMaxFdsPerFrame) : max_fds_(max_fds) {}

  // One recvmsg. Returns the frame once complete, nullopt when more bytes are needed (EAGAIN on a
  // non-blocking socket, or a partial read) or on a clean end of stream between frames (see eof()).
  // Throws Error(protocol) for an oversized or empty frame (checked before allocating), more fds
  // than allowed, a truncated control message, or the stream ending inside a frame; Error(resource)
  // for a failed recvmsg. After a throw the stream is out of sync: close the connection.
  std::optional<ReceivedFrame> read(int socket);

  bool eof() const { return eof_; }
  // True while a frame has started but not finished.
  bool in_frame() const { return header_bytes_ > 0; }
  // Descriptors received with the frame in progress (owned here until it completes).
  std::size_t held_fds() const { return fds_.size(); }

 private:
  void take_fds(std::vector<UniqueFd>& received);

  std::size_t max_fds_;
  unsigned char header_[protocol::kFrameHeaderBytes] = {};
  std::size_t header_bytes_ = 0;
  std::size_t payload_size_ = 0;
  std::string payload_;
  std::size_t payload_bytes_ = 0;
  std::vector<UniqueFd> fds_;
  bool eof_ = false;
};

// Blocking read of one whole frame; nullopt on a clean end of stream before its first byte.
std::optional<ReceivedFrame> recv_frame_with_fds(int socket, std::size_t max_fds = protocol::kMaxFdsPerFrame);

}  // namespace heygem
