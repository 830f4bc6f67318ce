#pragma once
// The sd_notify(3) datagram protocol spoken directly: one AF_UNIX SOCK_DGRAM message of
// newline-separated KEY=VALUE assignments to $NOTIFY_SOCKET. Used by every build, with libsystemd
// or without (the GPU machine ships no headers): unlike sd_notify(), it never blocks when the
// receiver stops reading.
#include <string>

namespace heygem::system {

// Sends `message` to `socket_path`: a filesystem path ("/run/systemd/notify") or an abstract
// socket name written with a leading '@'. Throws heygem::Error(invalid_argument) for a path that
// cannot be a socket address and heygem::Error(resource) when the send fails or the receiver's
// queue is full (the message is dropped, the caller is not blocked), naming the path.
void send_notify_datagram(const std::string& socket_path, const std::string& message);

}  // namespace heygem::system
