#include "tests/hardening/daemon_harness.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/unique_fd.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int decode_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits up to `limit` for `pid`; its exit code, or nullopt while it still runs.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return decode_wait_status(status);
    if (done < 0) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(20ms);
  }
}

// Reads two pipes to their end without either one filling up and blocking the child.
void drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open = 2;
  char buffer[8192];
  while (open > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

fs::path heygemd_binary() { return HEYGEMD_BINARY; }
fs::path heygemctl_binary() { return HEYGEMCTL_BINARY; }

CommandResult run_command(const std::vector<std::string>& argv, std::optional<uid_t> uid, std::optional<gid_t> gid) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]), err_read(err_pipe[0]), err_write(err_pipe[1]);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {  // only async-signal-safe calls until exec
    ::dup2(out_write.get(), 1);
    ::dup2(err_write.get(), 2);
    if (gid && (::setgroups(0, nullptr) != 0 || ::setgid(*gid) != 0)) ::_exit(126);
    if (uid && ::setuid(*uid) != 0) ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  out_write.reset();
  err_write.reset();
  CommandResult result;
  drain(out_read.get(), err_read.get(), result.out, result.err);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = decode_wait_status(status);
  return result;
}

Daemon::Daemon(DaemonOptions options)
    : socket_(work_.path() / "heygemd.sock"),
      state_dir_(options.state_dir.empty() ? work_.path() / "state" : options.state_dir),
      config_(work_.path() / "heygemd.yaml"),
      log_(work_.path() / "heygemd.log"),
      max_file_bytes_(options.max_file_bytes),
      wait_until_ready_(options.wait_until_ready),
      max_open_files_(options.max_open_files) {
  std::ofstream config(config_);
  config << "socket:\n  path: " << socket_.string() << "\n  mode: \"" << options.socket_mode << "\"\n"
         << "state_dir: " << state_dir_.string() << "\n"
         << "scheduler:\n  max_concurrent_jobs: " << options.max_concurrent_jobs << "\n  shutdown_timeout: 5s\n"
         << "logging:\n  level: " << options.log_level << "\n"
         << "models:\n  directory: " << (shared_root() / "models").string() << "\n";
  if (options.models_section.empty())
    config << "  entries:\n"
           << "    - {name: wav2lip, kind: wav2lip, weights: \"\", device: cpu, precision: float32, preload: true}\n"
           << "    - {name: retinaface, kind: retinaface, weights: retinaface_mobilenet0.25.pth, device: cpu,"
              " precision: float32, preload: true}\n";
  else
    config << options.models_section;
  if (!options.limits.empty()) {
    config << "limits:\n";
    for (const auto& [key, value] : options.limits) config << "  " << key << ": " << value << "\n";
  }
  config.close();  // flushed before heygemd reads it
  if (!config) throw std::runtime_error("cannot write " + config_.string());
  start();
}

Daemon::~Daemon() {
  try {
    stop();
  } catch (...) {
  }
}

void Daemon::start() {
  launch();
  wait_until_ready();
}

void Daemon::launch() {
  if (pid_ > 0) throw std::logic_error("heygemd already runs");
  const std::string binary = heygemd_binary().string(), config_arg = config_.string();
  const UniqueFd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  char* args[] = {const_cast<char*>(binary.c_str()), const_cast<char*>("--config"),
                  const_cast<char*>(config_arg.c_str()), nullptr};
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(log.get(), 1);
    ::dup2(log.get(), 2);
    if (max_file_bytes_) {
      const rlimit limit{*max_file_bytes_, *max_file_bytes_};
      ::signal(SIGXFSZ, SIG_IGN);  // an ignored signal stays ignored across exec
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(126);
    }
    if (max_open_files_) {
      const rlimit limit{*max_open_files_, *max_open_files_};
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(126);
    }
    ::execv(args[0], args);
    ::_exit(127);
  }
  pid_ = pid;
}

void Daemon::wait_until_ready() {
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (const auto exited = wait_for(pid_, 0ms)) {
      pid_ = -1;
      throw std::runtime_error("heygemd exited with " + std::to_string(*exited) + ":\n" + log_text());
    }
    const auto pong = ctl({"ping"});
    if (pong.exit_code == 0 && (!wait_until_ready_ || pong.out.find("loading models") == std::string::npos)) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("heygemd did not answer ping within 180 s:\n" + log_text());
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_for(pid_, 30s);
  pid_ = -1;
}

void Daemon::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  if (!wait_for(pid_, 60s)) {
    ::kill(pid_, SIGKILL);
    wait_for(pid_, 30s);
  }
  pid_ = -1;
}

CommandResult Daemon::ctl(const std::vector<std::string>& args, std::optional<uid_t> uid, std::optional<gid_t> gid) const {
  std::vector<std::string> argv{heygemctl_binary().string(), "--socket", socket_.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, uid, gid);
}

bool Daemon::ping() const { return ctl({"ping"}).exit_code == 0; }

std::vector<protocol::JobStatus> Daemon::jobs() const {
  const auto result = ctl({"--json", "list", "--all"});
  if (result.exit_code != 0) throw std::runtime_error("heygemctl list failed: " + result.err);
  std::istringstream lines(result.out);
  std::vector<protocol::JobStatus> jobs;
  for (std::string line; std::getline(lines, line);) {  // a long listing: one line per part
    if (line.empty()) continue;
    const auto response = protocol::parse_response(line);
    const auto* list = std::get_if<protocol::ListResponse>(&response);
    if (!list) continue;
    jobs.insert(jobs.end(), list->jobs.begin(), list->jobs.end());
    if (!list->more) return jobs;
  }
  throw std::runtime_error("heygemctl --json list printed no (complete) list: " + result.out);
}

std::vector<std::string> Daemon::spool_problems() const {
  std::vector<std::string> problems;
  std::map<std::string, protocol::JobStatus> known;
  for (auto& job : jobs()) known.emplace(job.job_id, job);
  const fs::path spool = state_dir_ / "spool";
  if (!fs::is_directory(spool)) return problems;
  for (const auto& folder : fs::directory_iterator(spool)) {
    const std::string id = folder.path().filename().string();
    const auto job = known.find(id);
    if (job == known.end()) {
      problems.push_back("spool/" + id + ": no such job (leaked)");
      continue;
    }
    if (!protocol::is_finished(job->second.state)) continue;
    std::set<std::string> allowed{"audio", "job.log"};
    for (std::size_t i = 0; i < job->second.items.size(); ++i) {
      allowed.insert("video-" + std::to_string(i));
      if (job->second.items[i].in_spool) allowed.insert("output-" + std::to_string(i) + ".mp4");
    }
    for (const auto& entry : fs::directory_iterator(folder.path()))
      if (!allowed.count(entry.path().filename().string()))
        problems.push_back("spool/" + id + "/" + entry.path().filename().string() + ": left by a " +
                           std::string(protocol::to_string(job->second.state)) + " job");
  }
  return problems;
}

std::size_t Daemon::open_fds() const {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/fd")) ++count;
  return count;
}

std::uint64_t Daemon::resident_kib() const {
  std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

std::string Daemon::log_text() const { return read_file(log_); }

bool is_valid_video(const fs::path& file) {
  const auto probe = run_command({"/usr/bin/ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
                                  "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file.string()});
  if (probe.exit_code != 0) return false;
  try {
    return std::stoll(probe.out) > 0;
  } catch (const std::exception&) {
    return false;
  }
}

void make_tiny_clip(const fs::path& file, int size, double seconds) {
  const std::string dims = std::to_string(size) + "x" + std::to_string(size), length = std::to_string(seconds);
  const auto result = run_command({"/usr/bin/ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                                   "testsrc2=size=" + dims + ":rate=25:duration=" + length, "-f", "lavfi", "-i",
                                   "sine=frequency=300:duration=" + length, "-c:v", "libx264", "-preset",
                                   "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", file.string()});
  if (result.exit_code != 0) throw std::runtime_error("ffmpeg failed: " + result.err);
}

}  // namespace heygem::test
