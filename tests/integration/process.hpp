#pragma once
// Child processes for the integration tests: heygemd in the background, heygemctl runs to
// completion (optionally as another uid), output captured in files.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace heygem::integration {

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out, err;
};

struct RunOptions {
  std::optional<uid_t> as_uid;  // setgid/setuid (and no supplementary groups) before exec
  std::optional<gid_t> as_gid;
  std::chrono::seconds timeout{300};
  std::vector<std::string> environment;  // "NAME=value" added to ours
};

// Runs `argv` to completion; output captured. Kills it (SIGKILL) after the timeout.
RunResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& scratch,
                      const RunOptions& options = {});

// A process running in the background (heygemd); stdout+stderr go to `log`.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~BackgroundProcess();  // SIGKILL if still running
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void kill(int signal);
  // Waits for the exit; returns the exit code (-signal when killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::seconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace heygem::integration
