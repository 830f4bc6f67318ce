#pragma once
// The daemon's listening socket. A lock file beside the socket (flock) tells a stale socket (its
// daemon is gone: remove and bind again) from a live heygemd (refuse to start). When systemd passed
// a socket (socket activation) that one is used instead and nothing is bound or removed.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include "common/unique_fd.hpp"

namespace heygem::server {

struct ListenerOptions {
  std::filesystem::path path;
  mode_t mode = 0660;
  std::string group;  // "" = leave the group as created
  int backlog = 128;
};

class Listener {
 public:
  // Binds `options.path` (creating its folder, mode 0755 when missing). Throws heygem::Error:
  // resource "another heygemd is running on PATH (pid N)" when the lock is held, or naming the
  // failing call and the path.
  static Listener bind(const ListenerOptions& options);
  // Wraps a socket systemd passed (already bound and listening).
  static Listener adopt(int activated_fd);

  Listener(Listener&&) = default;
  Listener& operator=(Listener&&) = default;
  ~Listener();  // removes the socket file it bound (never an adopted one)

  int fd() const { return socket_.get(); }
  // Hands the listening fd over (to Asio); the lock and the socket file stay with this object.
  int release_fd() { return socket_.release(); }
  const std::filesystem::path& path() const { return path_; }
  bool activated() const { return activated_; }

 private:
  Listener() = default;
  UniqueFd socket_;
  UniqueFd lock_;
  std::filesystem::path path_;
  bool activated_ = false;
};

// The lock file for a socket path ("<path>.lock").
std::filesystem::path lock_path_for(const std::filesystem::path& socket);

}  // namespace heygem::server
