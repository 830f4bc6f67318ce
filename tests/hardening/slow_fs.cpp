// heygem-slow-fs BACKING MOUNTPOINT DELAY_MS MARKER: a FUSE file system that mirrors BACKING and
// makes every write take DELAY_MS (touching MARKER when the first one starts). The hardening suite
// uses it as a user's slow output disk (NFS under load, a FUSE mount): heygemd's delivery into such
// a file must never hold up other clients.
#define FUSE_USE_VERSION 31
#include <fuse3/fuse.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

std::string backing;
std::string marker;
int delay_ms = 0;

std::string real(const char* path) { return backing + path; }
int result(int rc) { return rc < 0 ? -errno : rc; }

int do_getattr(const char* path, struct stat* st, fuse_file_info* fi) {
  if (fi) return result(::fstat(static_cast<int>(fi->fh), st));
  return result(::lstat(real(path).c_str(), st));
}
int do_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*, fuse_readdir_flags) {
  DIR* dir = ::opendir(real(path).c_str());
  if (!dir) return -errno;
  while (dirent* entry = ::readdir(dir)) fill(buf, entry->d_name, nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  ::closedir(dir);
  return 0;
}
int do_create(const char* path, mode_t mode, fuse_file_info* fi) {
  const int fd = ::open(real(path).c_str(), fi->flags, mode);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}
int do_open(const char* path, fuse_file_info* fi) {
  const int fd = ::open(real(path).c_str(), fi->flags);
  if (fd < 0) return -errno;
  fi->fh = static_cast<uint64_t>(fd);
  return 0;
}
int do_read(const char*, char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  return result(static_cast<int>(::pread(static_cast<int>(fi->fh), buf, size, offset)));
}
int do_write(const char*, const char* buf, size_t size, off_t offset, fuse_file_info* fi) {
  if (!marker.empty()) ::close(::open(marker.c_str(), O_WRONLY | O_CREAT, 0644));
  std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
  return result(static_cast<int>(::pwrite(static_cast<int>(fi->fh), buf, size, offset)));
}
int do_release(const char*, fuse_file_info* fi) { return result(::close(static_cast<int>(fi->fh))); }
int do_fsync(const char*, int, fuse_file_info* fi) { return result(::fsync(static_cast<int>(fi->fh))); }
int do_unlink(const char* path) { return result(::unlink(real(path).c_str())); }
int do_rename(const char* from, const char* to, unsigned int) { return result(::rename(real(from).c_str(), real(to).c_str())); }
int do_link(const char* from, const char* to) { return result(::link(real(from).c_str(), real(to).c_str())); }
int do_chmod(const char* path, mode_t mode, fuse_file_info* fi) {
  return result(fi ? ::fchmod(static_cast<int>(fi->fh), mode) : ::chmod(real(path).c_str(), mode));
}
int do_truncate(const char* path, off_t size, fuse_file_info* fi) {
  return result(fi ? ::ftruncate(static_cast<int>(fi->fh), size) : ::truncate(real(path).c_str(), size));
}
int do_utimens(const char* path, const timespec times[2], fuse_file_info*) {
  return result(::utimensat(AT_FDCWD, real(path).c_str(), times, AT_SYMLINK_NOFOLLOW));
}
int do_mkdir(const char* path, mode_t mode) { return result(::mkdir(real(path).c_str(), mode)); }
int do_rmdir(const char* path) { return result(::rmdir(real(path).c_str())); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: heygem-slow-fs BACKING MOUNTPOINT DELAY_MS MARKER\n");
    return 2;
  }
  backing = argv[1];
  delay_ms = std::atoi(argv[3]);
  marker = argv[4];
  fuse_operations ops{};
  ops.getattr = do_getattr;
  ops.readdir = do_readdir;
  ops.create = do_create;
  ops.open = do_open;
  ops.read = do_read;
  ops.write = do_write;
  ops.release = do_release;
  ops.fsync = do_fsync;
  ops.unlink = do_unlink;
  ops.rename = do_rename;
  ops.link = do_link;
  ops.chmod = do_chmod;
  ops.truncate = do_truncate;
  ops.utimens = do_utimens;
  ops.mkdir = do_mkdir;
  ops.rmdir = do_rmdir;
  char* fuse_argv[] = {argv[0], const_cast<char*>("-f"), const_cast<char*>("-o"),
                       const_cast<char*>("default_permissions"), argv[2], nullptr};
  return fuse_main(5, fuse_argv, &ops, nullptr);
}
