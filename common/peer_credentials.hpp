#pragma once
// Who is on the other end of a Unix socket, as the kernel saw it at connect() (SO_PEERCRED).
#include <sys/types.h>

namespace heygem {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Throws Error(resource) naming the cause when the socket has no peer credentials.
PeerCredentials peer_credentials(int socket);

}  // namespace heygem
