#include "common/peer_credentials.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/errors.hpp"

namespace heygem {

PeerCredentials peer_credentials(int socket) {
  ucred credentials{};
  socklen_t size = sizeof(credentials);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0)
    throw Error(ErrorCode::resource, std::string("SO_PEERCRED: ") + std::strerror(errno));
  return PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
}

}  // namespace heygem
