#include "cli/lib/local_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "cli/lib/cli_error.hpp"

namespace heygem::cli {
namespace {

[[noreturn]] void file_error(const std::filesystem::path& path, const std::string& why) {
  throw CliError(ExitCode::local_file, path.string() + ": " + why);
}

bool names_a_folder(const std::string& target, const std::filesystem::path& resolved) {
  std::error_code ignored;
  return target.back() == '/' || std::filesystem::is_directory(resolved, ignored);
}

}  // namespace

UniqueFd open_input(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) file_error(path, std::strerror(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) file_error(path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) file_error(path, "not a regular file");
  return fd;
}

OutputFile OutputFile::create(const std::filesystem::path& path, bool force) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | (force ? O_TRUNC : O_EXCL);
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd) {
    if (errno == EEXIST) file_error(path, "exists (use --force to overwrite)");
    file_error(path, std::strerror(errno));
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) file_error(path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) file_error(path, "not a regular file");
  return OutputFile(std::move(fd), path);
}

OutputFile::~OutputFile() {
  if (path_.empty() || keep_) return;
  fd_.reset();
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

std::string output_name_for(const std::filesystem::path& video) {
  return video.stem().string() + ".lipsync.mp4";
}

std::vector<std::filesystem::path> plan_outputs(const std::vector<std::filesystem::path>& videos,
                                                const std::string& target, const std::filesystem::path& cwd) {
  std::vector<std::filesystem::path> outputs;
  const std::filesystem::path resolved = cwd / target;  // an absolute target stays as it is
  const bool into_folder = target.empty() || names_a_folder(target, resolved);
  if (!into_folder && videos.size() > 1)
    throw CliError(ExitCode::usage, "-o " + target + ": with " + std::to_string(videos.size()) +
                                        " videos, -o must be an existing folder (or end in '/')");
  if (!into_folder) return {resolved};
  const std::filesystem::path folder = target.empty() ? cwd : resolved;
  std::set<std::filesystem::path> seen;
  for (const auto& video : videos) {
    outputs.push_back(folder / output_name_for(video));
    if (!seen.insert(outputs.back()).second)
      throw CliError(ExitCode::usage, "two videos would both be written to " + outputs.back().string() +
                                          "; give them different names or submit them separately");
  }
  return outputs;
}

}  // namespace heygem::cli
