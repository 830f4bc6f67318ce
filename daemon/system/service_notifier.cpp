#include "daemon/system/service_notifier.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/errors.hpp"
#include "daemon/system/notify_socket.hpp"

namespace heygem::system {
namespace {

constexpr int first_activated_fd = 3;  // SD_LISTEN_FDS_START

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

// Parses a non-negative decimal; nullopt for anything else (empty, sign, trailing text).
std::optional<long long> parse_count(std::string_view text) {
  long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

// WATCHDOG_USEC applies to us only if WATCHDOG_PID is unset or names this process (sd_watchdog_enabled).
std::optional<std::chrono::microseconds> watchdog_from_environment() {
  const auto usec = parse_count(environment("WATCHDOG_USEC"));
  if (!usec || *usec == 0) return std::nullopt;
  if (const auto pid_text = environment("WATCHDOG_PID"); !pid_text.empty()) {
    const auto pid = parse_count(pid_text);
    if (!pid || *pid != static_cast<long long>(::getpid())) return std::nullopt;
  }
  return std::chrono::microseconds(*usec / 2);
}

std::int64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::int64_t>(now.tv_sec) * 1'000'000 + now.tv_nsec / 1'000;
}

// STATUS= is one line: a newline would start a new assignment.
std::string single_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}

}  // namespace

ServiceNotifier::ServiceNotifier()
    : socket_path_(environment("NOTIFY_SOCKET")), watchdog_interval_(watchdog_from_environment()) {}

bool ServiceNotifier::enabled() const { return !socket_path_.empty(); }

std::optional<std::chrono::microseconds> ServiceNotifier::watchdog_interval() const { return watchdog_interval_; }

void ServiceNotifier::ready(const std::string& status) { send("READY=1\nSTATUS=" + single_line(status)); }

void ServiceNotifier::status(const std::string& status) { send("STATUS=" + single_line(status)); }

void ServiceNotifier::watchdog() { send("WATCHDOG=1"); }

void ServiceNotifier::reloading() { send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec())); }

void ServiceNotifier::stopping() { send("STOPPING=1"); }

void ServiceNotifier::extend_timeout(std::chrono::microseconds extra) {
  send("EXTEND_TIMEOUT_USEC=" + std::to_string(extra.count()));
}

void ServiceNotifier::send(const std::string& message) {
  if (!enabled()) return;
  // Our own sender, not sd_notify(): sd_notify blocks while the receiver's queue is full, and a
  // NOTIFY_SOCKET that nobody reads (not systemd) must not stall the daemon's status updates.
  std::string failure;
  try {
    send_notify_datagram(socket_path_, message);
  } catch (const Error& error) {
    failure = error.what();
  }
  if (failure.empty()) return;
  // Losing a notification must not take the daemon down; systemd's own timeouts will show it.
  if (!send_failure_reported_.exchange(true))
    spdlog::warn("systemd notification not delivered: {}", failure);
  else
    spdlog::debug("systemd notification not delivered: {}", failure);
}

StartTimeoutExtension::StartTimeoutExtension(ServiceNotifier& notifier, std::chrono::milliseconds period,
                                             std::chrono::milliseconds budget)
    : notifier_(notifier), period_(period), deadline_(std::chrono::steady_clock::now() + budget) {
  if (notifier_.enabled()) thread_ = std::thread([this] { run(); });
}

StartTimeoutExtension::~StartTimeoutExtension() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  stop_requested_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StartTimeoutExtension::run() {
  std::unique_lock lock(mutex_);
  while (!stopped_ && std::chrono::steady_clock::now() < deadline_) {
    // Three periods of slack: one late message (a busy machine) does not end the start.
    notifier_.extend_timeout(std::chrono::duration_cast<std::chrono::microseconds>(period_ * 3));
    stop_requested_.wait_for(lock, period_, [this] { return stopped_; });
  }
}

std::vector<int> listened_fds(const char* listen_pid, const char* listen_fds, long self) {
  if (!listen_pid || !listen_fds) return {};
  const auto pid = parse_count(listen_pid);
  if (!pid) throw Error(ErrorCode::invalid_argument, std::string("LISTEN_PID: expected a process id, got '") + listen_pid + "'");
  if (*pid != self) return {};  // meant for another process (e.g. our parent)
  const auto count = parse_count(listen_fds);
  if (!count || *count > 1024)
    throw Error(ErrorCode::invalid_argument, std::string("LISTEN_FDS: expected a small count, got '") + listen_fds + "'");
  std::vector<int> fds;
  for (int i = 0; i < *count; ++i) fds.push_back(first_activated_fd + i);
  return fds;
}

std::vector<int> activated_sockets() {
  auto fds = listened_fds(std::getenv("LISTEN_PID"), std::getenv("LISTEN_FDS"), static_cast<long>(::getpid()));
  for (const int fd : fds) {
    const int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) throw Error(ErrorCode::invalid_argument, "LISTEN_FDS: fd " + std::to_string(fd) + " is not open");
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  return fds;
}

}  // namespace heygem::system
