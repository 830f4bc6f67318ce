#pragma once
// The daemon's voice towards systemd (issue 6): READY=1, STATUS=, WATCHDOG=1, STOPPING=1,
// RELOADING=1, EXTEND_TIMEOUT_USEC. With libsystemd it uses sd_notify; without it (the GPU machine
// has no headers) it speaks the same datagram protocol to $NOTIFY_SOCKET itself, so nothing is
// faked. When NOTIFY_SOCKET is unset every call is a no-op.
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace heygem::system {

class ServiceNotifier {
 public:
  ServiceNotifier();  // reads NOTIFY_SOCKET and WATCHDOG_USEC
  void ready(const std::string& status);
  void status(const std::string& status);
  void watchdog();               // call only when the scheduler proved it is alive
  void reloading();              // RELOADING=1 + MONOTONIC_USEC
  void stopping();
  void extend_timeout(std::chrono::microseconds extra);
  // Half of WATCHDOG_USEC when the watchdog is enabled for this process.
  std::optional<std::chrono::microseconds> watchdog_interval() const;
  bool enabled() const;

 private:
  void send(const std::string& message);
  std::string socket_path_;
  std::optional<std::chrono::microseconds> watchdog_interval_;
  std::atomic<bool> send_failure_reported_{false};  // warn once, then quietly at debug level
};

// Sockets passed by systemd socket activation (LISTEN_FDS / LISTEN_PID), as fds >= 3; empty if none.
// Marks them close-on-exec and unsets LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES so that children do
// not inherit them. Throws heygem::Error(invalid_argument) naming the variable when it is malformed.
std::vector<int> activated_sockets();

// The pure part of activated_sockets(): which fds the two variables describe for process `self`.
std::vector<int> listened_fds(const char* listen_pid, const char* listen_fds, long self);

}  // namespace heygem::system
