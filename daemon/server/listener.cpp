#include "daemon/server/listener.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/errors.hpp"

namespace heygem::server {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
  throw Error(ErrorCode::resource, what + " " + path.string() + ": " + std::strerror(errno));
}

std::string read_pid(int fd) {
  char buffer[32] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  std::string text(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text.empty() ? "unknown" : text;
}

UniqueFd take_lock(const std::filesystem::path& socket) {
  const auto path = lock_path_for(socket);
  // O_NOFOLLOW: the lock file is the daemon's own; a symlink planted there must not redirect the
  // truncate and write below to another file.
  UniqueFd lock(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!lock) fail("cannot open the lock file", path);
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw Error(ErrorCode::resource, "another heygemd is running on " + socket.string() + " (pid " +
                                           read_pid(lock.get()) + "); stop it or choose another --socket");
    fail("cannot lock", path);
  }
  const auto pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock.get(), 0) != 0 || ::pwrite(lock.get(), pid.data(), pid.size(), 0) < 0)
    fail("cannot write", path);
  return lock;
}

void apply_group(const std::filesystem::path& path, const std::string& group) {
  if (group.empty()) return;
  errno = 0;
  const struct group* entry = ::getgrnam(group.c_str());
  if (!entry)
    throw Error(ErrorCode::invalid_argument, "socket.group: no group named \"" + group + "\"");
  if (::chown(path.c_str(), static_cast<uid_t>(-1), entry->gr_gid) != 0) fail("cannot chgrp " + group, path);
}

}  // namespace

std::filesystem::path lock_path_for(const std::filesystem::path& socket) {
  auto lock = socket;
  lock += ".lock";
  return lock;
}

Listener Listener::bind(const ListenerOptions& options) {
  const auto& path = options.path;
  sockaddr_un address{};
  if (path.native().size() >= sizeof(address.sun_path))
    throw Error(ErrorCode::invalid_argument, "socket path too long (" + std::to_string(path.native().size()) +
                                                 " bytes, at most " + std::to_string(sizeof(address.sun_path) - 1) +
                                                 "): " + path.string());
  std::error_code ec;
  if (!path.parent_path().empty() && !std::filesystem::exists(path.parent_path(), ec)) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) throw Error(ErrorCode::resource, "cannot create " + path.parent_path().string() + ": " + ec.message());
  }
  Listener listener;
  listener.lock_ = take_lock(path);
  // We hold the lock, so whatever socket file is there belongs to a daemon that is gone.
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) fail("cannot remove the stale socket", path);
  listener.socket_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.socket_) fail("cannot create a socket for", path);
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.native().size());
  // Bind with a closed umask, then open up to the configured mode: never briefly wider.
  const mode_t old_mask = ::umask(0177);
  const int bound = ::bind(listener.socket_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address);
  ::umask(old_mask);
  if (bound != 0) fail("cannot bind", path);
  listener.path_ = path;
  apply_group(path, options.group);
  if (::chmod(path.c_str(), options.mode) != 0) fail("cannot chmod", path);
  if (::listen(listener.socket_.get(), options.backlog) != 0) fail("cannot listen on", path);
  return listener;
}

Listener Listener::adopt(int activated_fd) {
  Listener listener;
  listener.socket_ = UniqueFd(activated_fd);
  listener.activated_ = true;
  ::fcntl(activated_fd, F_SETFD, FD_CLOEXEC);
  return listener;
}

Listener::~Listener() {
  // Only the daemon holding the lock removes its socket; the lock goes with lock_.
  if (!activated_ && lock_ && !path_.empty()) ::unlink(path_.c_str());
}

}  // namespace heygem::server
