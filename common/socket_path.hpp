#pragma once
// Where heygemd listens and heygemctl connects: --socket > $HEYGEM_SOCKET > the default, which is
// $XDG_RUNTIME_DIR/heygem/heygemd.sock for a non-root user with a runtime dir, and
// /run/heygem/heygemd.sock (the system service) otherwise.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace heygem {

inline constexpr const char* kSystemSocketPath = "/run/heygem/heygemd.sock";

// The inputs of the decision, separate from the process so that tests can state them.
struct SocketEnvironment {
  std::string heygem_socket;    // $HEYGEM_SOCKET, "" when unset
  std::string xdg_runtime_dir;  // $XDG_RUNTIME_DIR, "" when unset
  uid_t uid = 0;
  static SocketEnvironment current();
};

// The socket a daemon started without --socket uses.
std::filesystem::path default_socket_path(const SocketEnvironment& env);

// `flag` is --socket ("" when not given).
std::filesystem::path resolve_socket_path(const std::string& flag, const SocketEnvironment& env);

// The sockets a client tries, in order: the resolved one; and when nothing was named explicitly and
// the user's own daemon is not running, the system service's socket as well.
std::vector<std::filesystem::path> client_socket_candidates(const std::string& flag, const SocketEnvironment& env);

}  // namespace heygem
