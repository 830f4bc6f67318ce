#include "daemon/cluster/media_roots.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/errors.hpp"

namespace heygem::cluster {
namespace {

int openat2_beneath(int root, const std::string& relative, int flags, mode_t mode) {
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd;
  do {
    fd = static_cast<int>(::syscall(SYS_openat2, root, relative.c_str(), &how, sizeof(how)));
  } while (fd < 0 && errno == EINTR);
  return fd;
}

[[noreturn]] void refuse(const char* what, const std::string& path, int error) {
  std::string why;
  switch (error) {
    case EXDEV: why = "it leaves its media root (a symlink or \"..\" pointing outside)"; break;
    case ENOENT: why = "no such file or folder"; break;
    case EACCES:
    case EPERM: why = "permission denied"; break;
    case ELOOP: why = "too many symlinks"; break;
    case EISDIR: why = "it is a folder"; break;
    case ENOTDIR: why = "a part of it is not a folder"; break;
    default: why = std::strerror(error);
  }
  throw Error(ErrorCode::invalid_argument, std::string(what) + " " + path + ": " + why);
}

// Temporary files an earlier run of the same job left (a worker killed mid-job): nobody renames them.
void remove_stale_parts(int folder_path_fd, const std::string& prefix) {
  const int listing = ::openat(folder_path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) return;
  DIR* dir = ::fdopendir(listing);
  if (!dir) {
    ::close(listing);
    return;
  }
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.rfind(prefix, 0) == 0 && name.size() > 5 && name.compare(name.size() - 5, 5, ".part") == 0)
      stale.push_back(name);
  }
  for (const auto& name : stale) ::unlinkat(::dirfd(dir), name.c_str(), 0);
  ::closedir(dir);
}

}  // namespace

PendingOutput::~PendingOutput() {
  if (!done_ && folder_.valid() && !temp_name_.empty()) ::unlinkat(folder_.get(), temp_name_.c_str(), 0);
}

bool PendingOutput::sync() noexcept {
  if (done_ || synced_) return true;
  UniqueFd file(::openat(folder_.get(), temp_name_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  synced_ = file.valid() && ::fsync(file.get()) == 0;
  return synced_;
}

void PendingOutput::publish() {
  if (done_) return;
  // The scheduler wrote and closed its copy of the fd; the data reaches the disk before the name.
  if (!synced_) {
    UniqueFd file(::openat(folder_.get(), temp_name_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!file.valid() || ::fsync(file.get()) != 0)
      throw Error(ErrorCode::resource, "output " + shown_ + ": cannot sync its temporary file: " + std::strerror(errno));
    synced_ = true;
  }
  if (::renameat(folder_.get(), temp_name_.c_str(), folder_.get(), final_name_.c_str()) != 0)
    throw Error(ErrorCode::resource, "output " + shown_ + ": cannot rename it into place: " + std::strerror(errno));
  done_ = true;
  UniqueFd folder(::openat(folder_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (folder.valid()) ::fsync(folder.get());
}

MediaRoots::MediaRoots(const std::vector<std::filesystem::path>& roots) {
  for (const auto& root : roots) {
    if (!root.is_absolute()) throw Error(ErrorCode::invalid_argument, "cluster.media_roots: " + root.string() + " is not absolute");
    UniqueFd fd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid())
      throw Error(ErrorCode::invalid_argument, "cluster.media_roots: " + root.string() + ": " + std::strerror(errno));
    roots_.push_back({root.lexically_normal(), std::move(fd)});
  }
}

std::pair<const MediaRoots::Root*, std::string> MediaRoots::locate(const std::string& path, const char* what) const {
  const auto normal = std::filesystem::path(path).lexically_normal();
  for (const auto& root : roots_) {
    const auto relative = normal.lexically_relative(root.path);
    if (relative.empty() || relative == "." || *relative.begin() == "..") continue;
    return {&root, relative.string()};
  }
  std::string known;
  for (const auto& root : roots_) known += (known.empty() ? "" : ", ") + root.path.string();
  throw Error(ErrorCode::invalid_argument, std::string(what) + " " + path + " is outside cluster.media_roots (" + known + ")");
}

UniqueFd MediaRoots::open_input(const std::string& path) const {
  const auto [root, relative] = locate(path, "input");
  UniqueFd fd(openat2_beneath(root->fd.get(), relative, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0));
  if (!fd.valid()) refuse("input", path, errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0 || !S_ISREG(info.st_mode))
    throw Error(ErrorCode::invalid_argument, "input " + path + ": not a regular file");
  // O_NONBLOCK only kept a FIFO from blocking the open; reads of a regular file ignore it, but clear it.
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  return fd;
}

PendingOutput MediaRoots::create_output(const std::string& path, const std::string& tag,
                                        const std::string& stale_prefix) const {
  const auto [root, relative] = locate(path, "output");
  const std::filesystem::path rel(relative);
  const auto folder_rel = rel.parent_path().empty() ? std::string(".") : rel.parent_path().string();
  UniqueFd folder(openat2_beneath(root->fd.get(), folder_rel, O_PATH | O_DIRECTORY, 0));
  if (!folder.valid()) refuse("output folder of", path, errno);
  // The final name itself must not be a symlink out of the root (rename would replace the link,
  // but a reader following it would look elsewhere): refuse what is there and is not a file.
  struct stat info {};
  const auto name = rel.filename().string();
  if (::fstatat(folder.get(), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(info.st_mode))
    throw Error(ErrorCode::invalid_argument, "output " + path + ": exists and is not a regular file");
  remove_stale_parts(folder.get(), "." + name + ".heygem-" + stale_prefix);
  const auto temp = "." + name + ".heygem-" + tag + ".part";
  // O_EXCL + O_NOFOLLOW: never through a link, never someone else's file.
  UniqueFd file(::openat(folder.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!file.valid()) refuse("output", path, errno);
  return PendingOutput(std::move(folder), name, temp, std::move(file), path);
}

}  // namespace heygem::cluster
