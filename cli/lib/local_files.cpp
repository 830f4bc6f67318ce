#include "cli/lib/local_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "cli/lib/cli_error.hpp"

namespace heygem::cli {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void file_error(const fs::path& path, const std::string& why) {
  throw CliError(ExitCode::local_file, path.string() + ": " + why);
}

bool names_a_folder(const std::string& target, const fs::path& resolved) {
  std::error_code ignored;
  return target.back() == '/' || fs::is_directory(resolved, ignored);
}

fs::path folder_of(const fs::path& path) {
  const fs::path parent = path.parent_path();
  return parent.empty() ? fs::path(".") : parent;
}

mode_t current_umask() {
  const mode_t mask = ::umask(0);
  ::umask(mask);
  return mask;
}

// A hidden name beside `target` that nobody else has: ".<name>.heygemctl-XXXXXX".
std::string hidden_template(const fs::path& target) {
  return (folder_of(target) / ("." + target.filename().string() + ".heygemctl-XXXXXX")).string();
}

// Links the open, unnamed file `fd` at `to`; errno on failure.
bool link_fd(int fd, const fs::path& to) {
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, to.c_str(), AT_SYMLINK_FOLLOW) == 0) return true;
  if (errno != ENOENT && errno != ENOTDIR) return false;
  // No /proc: AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, which root has.
  return ::linkat(fd, "", AT_FDCWD, to.c_str(), AT_EMPTY_PATH) == 0;
}

void sync_folder(const fs::path& folder) {
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

UniqueFd open_input(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) file_error(path, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) file_error(path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) file_error(path, "not a regular file");
  return fd;
}

FileIdentity identity_of(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0) return {};
  return {info.st_dev, info.st_ino};
}

void refuse_aliased_outputs(const std::vector<fs::path>& outputs,
                            const std::vector<std::pair<std::string, FileIdentity>>& inputs) {
  std::vector<std::pair<std::string, FileIdentity>> seen = inputs;
  for (const auto& output : outputs) {
    struct stat info {};
    if (::stat(output.c_str(), &info) != 0) continue;  // nothing there yet: it can be nobody else
    const FileIdentity identity{info.st_dev, info.st_ino};
    for (const auto& [name, other] : seen)
      if (other == identity)
        throw CliError(ExitCode::local_file, output.string() + " is the same file as " + name +
                                                 "; the output must be a different file (nothing was written)");
    seen.emplace_back("the output " + output.string(), identity);
  }
}

OutputFile OutputFile::create(const fs::path& path, bool force) {
  struct stat existing {};
  if (::lstat(path.c_str(), &existing) == 0) {
    if (!force) file_error(path, "exists (use --force to overwrite)");
    if (S_ISDIR(existing.st_mode)) file_error(path, "is a folder");
  }
  const fs::path folder = folder_of(path);
  struct stat folder_info {};
  if (::stat(folder.c_str(), &folder_info) != 0) file_error(folder, std::string("folder: ") + std::strerror(errno));
  if (!S_ISDIR(folder_info.st_mode)) file_error(folder, "not a folder");

  UniqueFd fd(::open(folder.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644));
  std::string hidden;
  if (!fd) {
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) file_error(path, std::strerror(errno));
    hidden = hidden_template(path);
    fd = UniqueFd(::mkostemp(hidden.data(), O_CLOEXEC));
    if (!fd) file_error(path, std::strerror(errno));
    ::fchmod(fd.get(), 0644 & ~current_umask());
  }
  return OutputFile(std::move(fd), path, hidden, force);
}

void OutputFile::link_hidden() {
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::string name = hidden_template(path_);
    // mkstemp picks a free name; the link then takes it over (link refuses to replace, so the file
    // mkstemp made goes first).
    UniqueFd probe(::mkostemp(name.data(), O_CLOEXEC));
    if (!probe) file_error(path_, std::strerror(errno));
    probe.reset();
    ::unlink(name.c_str());
    if (link_fd(fd_.get(), name)) {
      hidden_path_ = name;
      return;
    }
    if (errno != EEXIST) file_error(path_, std::string("cannot link the result: ") + std::strerror(errno));
  }
  file_error(path_, "cannot find a free temporary name");
}

void OutputFile::publish() {
  if (published_) return;
  if (::fsync(fd_.get()) != 0) file_error(path_, std::string("fsync: ") + std::strerror(errno));
  if (hidden_path_.empty() && !force_) {
    if (link_fd(fd_.get(), path_)) {
      published_ = true;
      sync_folder(folder_of(path_));
      return;
    }
    if (errno != EEXIST) file_error(path_, std::string("cannot link the result: ") + std::strerror(errno));
  }
  if (hidden_path_.empty()) link_hidden();
  if (force_) {
    if (::rename(hidden_path_.c_str(), path_.c_str()) != 0)
      file_error(path_, std::string("cannot move the result into place: ") + std::strerror(errno) +
                            "; it is kept as " + hidden_path_.string());
  } else {
    if (::link(hidden_path_.c_str(), path_.c_str()) != 0) {
      const std::string why = errno == EEXIST ? "appeared while the job ran" : std::strerror(errno);
      const fs::path kept = std::exchange(hidden_path_, {});
      published_ = true;  // what is kept under the hidden name is the user's now
      file_error(path_, why + "; the result is kept as " + kept.string() + " (use --force to overwrite)");
    }
    ::unlink(hidden_path_.c_str());
  }
  hidden_path_.clear();
  published_ = true;
  sync_folder(folder_of(path_));
}

OutputFile::~OutputFile() {
  if (published_ || hidden_path_.empty()) return;  // an unnamed file goes with the last fd
  ::unlink(hidden_path_.c_str());
}

CreatedFolder CreatedFolder::for_target(const std::string& target, const fs::path& cwd) {
  if (target.empty() || target.back() != '/') return {};
  const fs::path folder = (cwd / target).parent_path();  // "out/" -> "out"
  if (::mkdir(folder.c_str(), 0777) == 0) return CreatedFolder(folder);
  if (errno == EEXIST) {
    std::error_code ignored;
    if (fs::is_directory(folder, ignored)) return {};
    file_error(folder, "exists and is not a folder");
  }
  if (errno == ENOENT) file_error(folder, "cannot create the folder: its parent " + folder.parent_path().string() + " does not exist");
  file_error(folder, std::string("cannot create the folder: ") + std::strerror(errno));
}

CreatedFolder::~CreatedFolder() {
  if (!path_.empty()) ::rmdir(path_.c_str());  // only when still empty
}

std::string output_name_for(const fs::path& video) { return video.stem().string() + ".lipsync.mp4"; }

std::vector<fs::path> plan_outputs(const std::vector<fs::path>& videos, const std::string& target,
                                   const fs::path& cwd) {
  std::vector<fs::path> outputs;
  const fs::path resolved = cwd / target;  // an absolute target stays as it is
  const bool into_folder = target.empty() || names_a_folder(target, resolved);
  if (!into_folder && videos.size() > 1)
    throw CliError(ExitCode::usage, "-o " + target + ": with " + std::to_string(videos.size()) +
                                        " videos, -o must be a folder (existing, or a path ending in '/')");
  if (!into_folder) return {resolved};
  const fs::path folder = target.empty() ? cwd : resolved;
  std::set<fs::path> seen;
  for (const auto& video : videos) {
    outputs.push_back(folder / output_name_for(video));
    if (!seen.insert(outputs.back()).second)
      throw CliError(ExitCode::usage, "two videos would both be written to " + outputs.back().string() +
                                          "; give them different names or submit them separately");
  }
  return outputs;
}

}  // namespace heygem::cli
