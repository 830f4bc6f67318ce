// `DESTDIR=... cmake --install` of this build places the binaries, the units, the sysusers and
// tmpfiles snippets, /etc/heygem/heygemd.yaml, the man pages and the bash completion, and a
// second install keeps an edited configuration.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/docs/doc_tools.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::test {
namespace {

const std::filesystem::path kSource(HEYGEM_SOURCE_DIR);

// An absolute install path below DESTDIR.
std::filesystem::path staged(const std::filesystem::path& destdir, const std::string& path) {
  return destdir / std::filesystem::path(path).relative_path();
}

std::filesystem::path installed(const std::filesystem::path& destdir, const std::string& relative_or_absolute) {
  const std::filesystem::path path(relative_or_absolute);
  return staged(destdir, path.is_absolute() ? path.string() : (std::filesystem::path(HEYGEM_INSTALL_PREFIX) / path).string());
}

CommandResult install_into(const std::filesystem::path& destdir) {
  return run_command({HEYGEM_CMAKE, "--install", HEYGEM_BINARY_DIR}, {"DESTDIR=" + destdir.string()});
}

TEST(Install, PlacesEverything) {
  TempDir destdir;
  const auto result = install_into(destdir.path());
  ASSERT_EQ(result.exit_code, 0) << result.out << result.err;

  const std::string man = HEYGEM_INSTALL_MANDIR;
  const std::string config = std::string(HEYGEM_CONFIG_DIR) + "/heygemd.yaml";
  // Installed as they are in the source tree.
  const std::vector<std::pair<std::string, std::filesystem::path>> copies{
      {man + "/man1/heygemctl.1", kSource / "man" / "heygemctl.1"},
      {man + "/man5/heygemd.yaml.5", kSource / "man" / "heygemd.yaml.5"},
      {man + "/man8/heygemd.8", kSource / "man" / "heygemd.8"},
      {config, kSource / "config" / "heygemd.yaml"},
      {std::string(HEYGEM_BASH_COMPLETION_DIR) + "/heygemctl", kSource / "completion" / "heygemctl.bash"},
      {std::string(HEYGEM_SYSTEMD_UNIT_DIR) + "/heygemd.socket", kSource / "systemd" / "heygemd.socket"},
      {std::string(HEYGEM_SYSUSERS_DIR) + "/heygem.conf", kSource / "systemd" / "heygem.sysusers.conf"},
      {std::string(HEYGEM_TMPFILES_DIR) + "/heygem.conf", kSource / "systemd" / "heygem.tmpfiles.conf"},
  };
  for (const auto& [path, source] : copies) {
    const auto file = installed(destdir.path(), path);
    ASSERT_TRUE(std::filesystem::is_regular_file(file)) << file;
    EXPECT_EQ(read_text(file), read_text(source)) << file;
  }

  const auto service = installed(destdir.path(), std::string(HEYGEM_SYSTEMD_UNIT_DIR) + "/heygemd.service");
  ASSERT_TRUE(std::filesystem::is_regular_file(service)) << service;
  const auto unit = read_text(service);
  EXPECT_EQ(unit.find('@'), std::string::npos) << "a placeholder is left in heygemd.service";
  // The unit starts the installed daemon with the installed config.
  EXPECT_NE(unit.find("ExecStart=" + std::string(HEYGEM_INSTALL_SBINDIR) + "/heygemd --config " + config), std::string::npos)
      << unit;

  std::vector<std::string> binaries{std::string(HEYGEM_INSTALL_BINDIR) + "/heygemctl"};
#ifdef HEYGEMD_BINARY
  binaries.push_back(std::string(HEYGEM_INSTALL_SBINDIR) + "/heygemd");
#endif
  for (const auto& binary : binaries) {
    const auto file = installed(destdir.path(), binary);
    ASSERT_TRUE(std::filesystem::is_regular_file(file)) << file;
    EXPECT_NE(std::filesystem::status(file).permissions() & std::filesystem::perms::owner_exec, std::filesystem::perms::none);
  }
}

TEST(Install, KeepsAnEditedConfiguration) {
  TempDir destdir;
  ASSERT_EQ(install_into(destdir.path()).exit_code, 0);
  const auto config = installed(destdir.path(), std::string(HEYGEM_CONFIG_DIR) + "/heygemd.yaml");
  const std::string edited = "scheduler:\n  max_concurrent_jobs: 3\n";
  std::ofstream(config, std::ios::trunc) << edited;

  const auto again = install_into(destdir.path());
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_EQ(read_text(config), edited);
  const auto dist = installed(destdir.path(), std::string(HEYGEM_CONFIG_DIR) + "/heygemd.yaml.dist");
  ASSERT_TRUE(std::filesystem::is_regular_file(dist));
  EXPECT_EQ(read_text(dist), read_text(kSource / "config" / "heygemd.yaml"));
}

}  // namespace
}  // namespace heygem::test
