#pragma once
// The files heygemctl opens for the daemon: inputs read-only, outputs created by the user's own
// process (so the daemon writes only where the user may), never overwritten without --force, and
// never visible at their path until complete.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.hpp"

namespace heygem::cli {

// Opens a regular file for reading. Throws CliError(local_file) naming the file and the cause.
UniqueFd open_input(const std::filesystem::path& path);

// A local file by what it is on disk (device and inode), so that links and symlinks compare equal.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};
FileIdentity identity_of(int fd);

// Refuses (CliError(local_file)) an output that already is one of `inputs` (or another output):
// the same device and inode, through hard links and symlinks too. Runs before any output is opened,
// so a refused command has written nothing. `inputs` pairs each input's name with its identity.
void refuse_aliased_outputs(const std::vector<std::filesystem::path>& outputs,
                            const std::vector<std::pair<std::string, FileIdentity>>& inputs);

// An output heygemctl writes through a file nobody sees until it is complete: an unnamed file in the
// target's folder (O_TMPFILE) that publish() links in at path() once the daemon has delivered the
// whole result. Whatever happens before (the job fails or is cancelled, the daemon or heygemctl is
// killed) the path holds the complete result or nothing. Where the file system has no O_TMPFILE, a
// hidden ".<name>.heygemctl-XXXXXX" beside the target stands in and is removed unless published.
class OutputFile {
 public:
  // Throws CliError(local_file): "<path> exists (use --force to overwrite)", a missing folder, or the
  // open error.
  static OutputFile create(const std::filesystem::path& path, bool force);

  OutputFile(OutputFile&& other) noexcept
      : fd_(std::move(other.fd_)),
        path_(std::exchange(other.path_, {})),
        hidden_path_(std::exchange(other.hidden_path_, {})),
        force_(other.force_),
        published_(other.published_) {}
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  bool published() const { return published_; }
  // Puts the complete file at path(), atomically: with --force it replaces what is there, without it
  // the path must still be free. Throws CliError(local_file); the result then stays under a hidden
  // name that the message gives.
  void publish();

 private:
  OutputFile(UniqueFd fd, std::filesystem::path path, std::filesystem::path hidden_path, bool force)
      : fd_(std::move(fd)), path_(std::move(path)), hidden_path_(std::move(hidden_path)), force_(force) {}
  // Gives the unnamed file a hidden name beside the target (for O_TMPFILE files).
  void link_hidden();

  UniqueFd fd_;
  std::filesystem::path path_;
  std::filesystem::path hidden_path_;  // "" while the file has no name (O_TMPFILE)
  bool force_ = false;
  bool published_ = false;
};

// A folder that -o named with a trailing '/' and that did not exist: created for the outputs and
// removed again when it is still empty at the end (nothing was published into it).
class CreatedFolder {
 public:
  CreatedFolder() = default;
  // Creates `target` when it ends in '/' and does not exist (its parent must). Throws
  // CliError(local_file) naming the folder.
  static CreatedFolder for_target(const std::string& target, const std::filesystem::path& cwd);
  CreatedFolder(CreatedFolder&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  CreatedFolder& operator=(CreatedFolder&&) = delete;
  ~CreatedFolder();

 private:
  explicit CreatedFolder(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

// The output name heygemctl gives a video: "<stem>.lipsync.mp4".
std::string output_name_for(const std::filesystem::path& video);

// Where each video's output goes. `target` is -o ("" = none): with one video a file or a folder
// (existing, or a path ending in '/'); with several, a folder. No -o: the current folder. Relative
// paths are taken from `cwd`. Throws CliError(usage) when -o is a file but there are several
// videos, or two outputs would collide.
std::vector<std::filesystem::path> plan_outputs(const std::vector<std::filesystem::path>& videos,
                                                const std::string& target, const std::filesystem::path& cwd);

}  // namespace heygem::cli
