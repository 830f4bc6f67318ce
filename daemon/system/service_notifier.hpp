#pragma once
// The daemon's voice towards systemd (issue 6): READY=1, STATUS=, WATCHDOG=1, STOPPING=1,
// RELOADING=1, EXTEND_TIMEOUT_USEC. It speaks sd_notify's datagram protocol to $NOTIFY_SOCKET
// itself (notify_socket.hpp), with or without libsystemd: sd_notify() would block the daemon when
// the receiver stops reading. When NOTIFY_SOCKET is unset every call is a no-op.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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

// Keeps TimeoutStartSec= from killing a slow but healthy start while the preload models load: from
// construction to destruction it sends EXTEND_TIMEOUT_USEC=<3 x period> at once and then every
// `period`, for at most `budget` in all. Past the budget the messages stop, so a load that hangs
// still fails the start. Nothing is sent (and no thread runs) when the notifier is disabled.
class StartTimeoutExtension {
 public:
  StartTimeoutExtension(ServiceNotifier& notifier, std::chrono::milliseconds period, std::chrono::milliseconds budget);
  ~StartTimeoutExtension();  // stops the messages: end it before READY=1
  StartTimeoutExtension(const StartTimeoutExtension&) = delete;
  StartTimeoutExtension& operator=(const StartTimeoutExtension&) = delete;

 private:
  void run();
  ServiceNotifier& notifier_;
  const std::chrono::milliseconds period_;
  const std::chrono::steady_clock::time_point deadline_;
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopped_ = false;
  std::thread thread_;  // last: it starts once the members above are set
};

// Sockets passed by systemd socket activation (LISTEN_FDS / LISTEN_PID), as fds >= 3; empty if none.
// Marks them close-on-exec and unsets LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES so that children do
// not inherit them. Throws heygem::Error(invalid_argument) naming the variable when it is malformed.
std::vector<int> activated_sockets();

// The pure part of activated_sockets(): which fds the two variables describe for process `self`.
std::vector<int> listened_fds(const char* listen_pid, const char* listen_fds, long self);

}  // namespace heygem::system
