// ServiceNotifier and socket activation against a real AF_UNIX datagram socket bound by the test,
// the way systemd's manager listens on $NOTIFY_SOCKET.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "common/errors.hpp"
#include "daemon/system/notify_socket.hpp"
#include "daemon/system/service_notifier.hpp"

namespace heygem::system {
namespace {

// Sets an environment variable for one test and restores the old value afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// A bound SOCK_DGRAM receiver: a filesystem path in a fresh temp folder, or an abstract name.
class NotifyListener {
 public:
  explicit NotifyListener(bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    const std::string unique = std::to_string(::getpid()) + "-" + std::to_string(counter()++);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      name_ = "@heygem-test-notify-" + unique;
      std::memcpy(address.sun_path + 1, name_.data() + 1, name_.size() - 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      folder_ = std::filesystem::temp_directory_path() / ("heygem-notify-" + unique);
      std::filesystem::create_directories(folder_);
      name_ = (folder_ / "notify").string();
      std::memcpy(address.sun_path, name_.data(), name_.size());
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0) << std::strerror(errno);
    timeval timeout{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~NotifyListener() {
    ::close(fd_);
    if (!folder_.empty()) std::filesystem::remove_all(folder_);
  }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  const std::string& name() const { return name_; }
  // The next datagram, or "" after a 2 s timeout.
  std::string receive() {
    std::vector<char> buffer(4096);
    const auto n = ::recv(fd_, buffer.data(), buffer.size(), 0);
    return n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : std::string();
  }
  bool nothing_pending() {
    char byte;
    return ::recv(fd_, &byte, 1, MSG_DONTWAIT) < 0;
  }

 private:
  static int& counter() {
    static int value = 0;
    return value;
  }
  int fd_ = -1;
  std::string name_;
  std::filesystem::path folder_;
};

TEST(ServiceNotifier, LifecycleMessagesArriveInOrder) {
  NotifyListener listener(false);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ServiceNotifier notifier;
  ASSERT_TRUE(notifier.enabled());

  notifier.ready("2 models warm, 0 jobs running, 0 queued");
  notifier.status("2 models warm, 1 job running,\n3 queued");
  notifier.watchdog();
  notifier.stopping();

  EXPECT_EQ(listener.receive(), "READY=1\nSTATUS=2 models warm, 0 jobs running, 0 queued");
  EXPECT_EQ(listener.receive(), "STATUS=2 models warm, 1 job running, 3 queued");  // one line
  EXPECT_EQ(listener.receive(), "WATCHDOG=1");
  EXPECT_EQ(listener.receive(), "STOPPING=1");
  EXPECT_TRUE(listener.nothing_pending());
}

TEST(ServiceNotifier, ReloadingCarriesMonotonicTimestampAndExtendTimeoutTheMicroseconds) {
  NotifyListener listener(true);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ServiceNotifier notifier;

  timespec before{};
  ::clock_gettime(CLOCK_MONOTONIC, &before);
  notifier.reloading();
  notifier.extend_timeout(std::chrono::seconds(90));

  const std::string reloading = listener.receive();
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(reloading.rfind(prefix, 0), 0u) << reloading;
  const long long stamp = std::stoll(reloading.substr(prefix.size()));
  const long long before_usec = static_cast<long long>(before.tv_sec) * 1'000'000 + before.tv_nsec / 1'000;
  EXPECT_GE(stamp, before_usec);
  EXPECT_LT(stamp, before_usec + 10'000'000);
  EXPECT_EQ(listener.receive(), "EXTEND_TIMEOUT_USEC=90000000");
}

TEST(StartTimeoutExtension, ExtendsAtOnceAndEveryPeriodUntilDestroyed) {
  NotifyListener listener(false);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ServiceNotifier notifier;
  {
    StartTimeoutExtension extension(notifier, std::chrono::milliseconds(40), std::chrono::minutes(1));
    // The first message goes out at once, the second one period later; each grants three periods.
    EXPECT_EQ(listener.receive(), "EXTEND_TIMEOUT_USEC=120000");
    EXPECT_EQ(listener.receive(), "EXTEND_TIMEOUT_USEC=120000");
  }
  while (!listener.nothing_pending()) {
  }  // drain a message that may have raced the destructor
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_TRUE(listener.nothing_pending()) << "EXTEND_TIMEOUT_USEC went on after the extension ended";
}

TEST(StartTimeoutExtension, StopsOnceTheBudgetIsSpent) {
  NotifyListener listener(false);
  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ServiceNotifier notifier;
  StartTimeoutExtension extension(notifier, std::chrono::milliseconds(20), std::chrono::milliseconds(70));
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  int messages = 0;
  while (!listener.nothing_pending()) ++messages;
  // Sent at 0, 20, 40 and 60 ms at most (fewer when the machine is slow), then never again: a hung
  // load must still hit TimeoutStartSec=.
  EXPECT_GE(messages, 1);
  EXPECT_LE(messages, 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(listener.nothing_pending());
}

TEST(ServiceNotifier, WithoutNotifySocketEverythingIsANoOp) {
  ::unsetenv("NOTIFY_SOCKET");
  ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  notifier.ready("x");
  notifier.watchdog();
  notifier.stopping();
}

TEST(ServiceNotifier, WatchdogIntervalIsHalfOfWatchdogUsecForThisProcessOnly) {
  ScopedEnv usec("WATCHDOG_USEC", "3000000");
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
    EXPECT_EQ(ServiceNotifier().watchdog_interval(), std::chrono::microseconds(1'500'000));
  }
  {
    ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    EXPECT_FALSE(ServiceNotifier().watchdog_interval().has_value());
  }
  ScopedEnv bad("WATCHDOG_USEC", "soon");
  EXPECT_FALSE(ServiceNotifier().watchdog_interval().has_value());
}

TEST(NotifyDatagram, SpeaksTheProtocolToPathAndAbstractSockets) {
  for (const bool abstract : {false, true}) {
    NotifyListener listener(abstract);
    send_notify_datagram(listener.name(), "READY=1\nSTATUS=warm");
    EXPECT_EQ(listener.receive(), "READY=1\nSTATUS=warm") << listener.name();
  }
}

// A receiver that never reads: once its queue is full, sends fail at once (the message is dropped)
// instead of blocking the daemon's thread; the notifier logs and carries on.
TEST(NotifyDatagram, AFullReceiverQueueFailsTheSendInsteadOfBlocking) {
  NotifyListener listener(false);
  const std::string status(512, 's');
  bool refused = false;
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 100000 && !refused; ++i) {
    try {
      send_notify_datagram(listener.name(), "STATUS=" + status);
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::resource);
      EXPECT_NE(std::string(error.what()).find("queue is full"), std::string::npos) << error.what();
      refused = true;
    }
  }
  EXPECT_TRUE(refused) << "100000 datagrams fit in an unread queue";
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));

  ScopedEnv socket("NOTIFY_SOCKET", listener.name());
  ServiceNotifier notifier;
  notifier.status("still serving");  // must return, not block
  EXPECT_EQ(listener.receive(), "STATUS=" + status);  // the queue holds what fitted, in order
}

TEST(NotifyDatagram, BadTargetsAreNamedInTheError) {
  try {
    send_notify_datagram("relative/notify", "READY=1");
    FAIL() << "a relative path was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("relative/notify"), std::string::npos) << error.what();
  }
  const auto missing = (std::filesystem::temp_directory_path() / "heygem-no-such-dir" / "notify").string();
  try {
    send_notify_datagram(missing, "READY=1");
    FAIL() << "sending to a missing socket succeeded";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::resource);
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
}

TEST(SocketActivation, ListenedFdsFollowsTheProtocol) {
  const long self = 4242;
  EXPECT_EQ(listened_fds(nullptr, nullptr, self), std::vector<int>{});
  EXPECT_EQ(listened_fds("4242", "2", self), (std::vector<int>{3, 4}));
  EXPECT_EQ(listened_fds("4243", "2", self), std::vector<int>{});  // for another process
  EXPECT_EQ(listened_fds("4242", "0", self), std::vector<int>{});
  EXPECT_THROW(listened_fds("4242", "two", self), Error);
  EXPECT_THROW(listened_fds("me", "1", self), Error);
}

TEST(SocketActivation, TakesFdThreeMarksItCloexecAndClearsTheEnvironment) {
  // Put a real listening socket on fd 3 as systemd would, keeping whatever the test runner had there.
  const int saved = ::fcntl(3, F_DUPFD_CLOEXEC, 10);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  ASSERT_EQ(::dup2(listener, 3), 3);
  if (listener != 3) ::close(listener);
  ::fcntl(3, F_SETFD, 0);
  {
    ScopedEnv pid("LISTEN_PID", std::to_string(::getpid()));
    ScopedEnv fds("LISTEN_FDS", "1");
    ScopedEnv names("LISTEN_FDNAMES", "heygemd.socket");
    EXPECT_EQ(activated_sockets(), std::vector<int>{3});
    EXPECT_TRUE(::fcntl(3, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
    EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
  }
  EXPECT_EQ(activated_sockets(), std::vector<int>{});  // nothing left for a second call
  if (saved >= 0) {
    ::dup2(saved, 3);
    ::close(saved);
  } else {
    ::close(3);
  }
}

}  // namespace
}  // namespace heygem::system
