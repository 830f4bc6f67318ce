#pragma once
// The sd_notify(3) datagram protocol spoken directly: one AF_UNIX SOCK_DGRAM message of
// newline-separated KEY=VALUE assignments to $NOTIFY_SOCKET. Used when the build has no libsystemd
// (the GPU machine ships no headers) and by the tests on every build.
#include <string>

namespace heygem::system {

// Sends `message` to `socket_path`: a filesystem path ("/run/systemd/notify") or an abstract
// socket name written with a leading '@'. Throws heygem::Error(invalid_argument) for a path that
// cannot be a socket address and heygem::Error(resource) when the send fails, naming the path.
void send_notify_datagram(const std::string& socket_path, const std::string& message);

}  // namespace heygem::system
