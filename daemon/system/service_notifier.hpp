#pragma once
// The daemon's voice towards systemd (issue 6): READY=1, STATUS=, WATCHDOG=1, STOPPING=1,
// RELOADING=1, EXTEND_TIMEOUT_USEC. With libsystemd it uses sd_notify; without it (the GPU machine
// has no headers) it speaks the same datagram protocol to $NOTIFY_SOCKET itself, so nothing is
// faked. When NOTIFY_SOCKET is unset every call is a no-op.
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
};

// Sockets passed by systemd socket activation (LISTEN_FDS / LISTEN_PID), as fds >= 3; empty if none.
std::vector<int> activated_sockets();

}  // namespace heygem::system
