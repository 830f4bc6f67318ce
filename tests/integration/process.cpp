#include "tests/integration/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace heygem::integration {
namespace {

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// In the child: redirect, drop privileges, exec. Never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, int out_fd, int err_fd, const RunOptions& options) {
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  int devnull = ::open("/dev/null", O_RDONLY);
  ::dup2(devnull, 0);
  if (options.as_gid) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(*options.as_gid) != 0) ::_exit(126);
  }
  if (options.as_uid && ::setuid(*options.as_uid) != 0) ::_exit(126);
  for (const auto& variable : options.environment) ::putenv(const_cast<char*>(variable.c_str()));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int decode_status(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status); }

}  // namespace

RunResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& scratch,
                      const RunOptions& options) {
  // Several test threads may run processes at once (the cluster tests' clients): each run's capture
  // files have a name of their own (a shared unsynchronised random engine once gave two runs one
  // name, and one of them read back nothing), and O_EXCL makes sure of it.
  static std::atomic<std::uint64_t> runs{0};
  const auto stem = scratch / ("run-" + std::to_string(::getpid()) + "-" + std::to_string(runs++));
  const auto out_path = stem.string() + ".out", err_path = stem.string() + ".err";
  const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0) throw std::runtime_error("cannot create capture files in " + scratch.string());
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, out_fd, err_fd, options);
  ::close(out_fd);
  ::close(err_fd);
  if (pid < 0) throw std::runtime_error("fork failed");
  RunResult result;
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      result.exit_code = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return result;
}

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log.string());
  pid_ = ::fork();
  if (pid_ == 0) exec_child(argv, log_fd, log_fd, {});
  ::close(log_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

BackgroundProcess::~BackgroundProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(30));
  }
}

bool BackgroundProcess::running() {
  if (status_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = decode_status(status);
    return false;
  }
  return true;
}

void BackgroundProcess::kill(int signal) {
  if (running()) ::kill(pid_, signal);
}

std::optional<int> BackgroundProcess::wait(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

}  // namespace heygem::integration
