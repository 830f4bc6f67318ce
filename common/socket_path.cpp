#include "common/socket_path.hpp"

#include <unistd.h>

#include <cstdlib>

namespace heygem {

SocketEnvironment SocketEnvironment::current() {
  SocketEnvironment env;
  if (const char* value = std::getenv("HEYGEM_SOCKET")) env.heygem_socket = value;
  if (const char* value = std::getenv("XDG_RUNTIME_DIR")) env.xdg_runtime_dir = value;
  env.uid = ::getuid();
  return env;
}

std::filesystem::path default_socket_path(const SocketEnvironment& env) {
  // A relative XDG_RUNTIME_DIR is invalid per the XDG spec: ignore it.
  if (env.uid != 0 && !env.xdg_runtime_dir.empty() && env.xdg_runtime_dir.front() == '/')
    return std::filesystem::path(env.xdg_runtime_dir) / "heygem" / "heygemd.sock";
  return kSystemSocketPath;
}

std::filesystem::path resolve_socket_path(const std::string& flag, const SocketEnvironment& env) {
  if (!flag.empty()) return flag;
  if (!env.heygem_socket.empty()) return env.heygem_socket;
  return default_socket_path(env);
}

std::vector<std::filesystem::path> client_socket_candidates(const std::string& flag, const SocketEnvironment& env) {
  std::vector<std::filesystem::path> candidates{resolve_socket_path(flag, env)};
  const bool named = !flag.empty() || !env.heygem_socket.empty();
  if (!named && candidates.front() != kSystemSocketPath) candidates.emplace_back(kSystemSocketPath);
  return candidates;
}

}  // namespace heygem
