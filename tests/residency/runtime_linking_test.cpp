// Every binary binds the C++ runtime's own std::filesystem: a PyTorch wheel's libtorch.so exports
// copies of those functions, and whichever library comes first in NEEDED wins the lookup (its
// remove_all on a non-empty folder jumped to address 0, crashing heygemd's spool clean-up on GPU
// boxes). This binary links libtorch like heygemd, so the removal below runs against the same
// lookup order; the NEEDED order is checked for heygemd, heygemctl and this test.
#include <gtest/gtest.h>
#include <link.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/models/placement.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::residency {
namespace {

namespace fs = std::filesystem;

// The DT_NEEDED entries of `binary`, in order (readelf from binutils).
std::vector<std::string> needed_libraries(const fs::path& binary) {
  std::vector<std::string> needed;
  const std::string command = "readelf -d '" + binary.string() + "' 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return needed;
  char line[1024];
  while (std::fgets(line, sizeof line, pipe)) {
    const std::string text = line;
    if (text.find("(NEEDED)") == std::string::npos) continue;
    const auto open = text.find('['), close = text.find(']');
    if (open != std::string::npos && close != std::string::npos) needed.push_back(text.substr(open + 1, close - open - 1));
  }
  ::pclose(pipe);
  return needed;
}

std::ptrdiff_t position_of(const std::vector<std::string>& libraries, const std::string& prefix) {
  for (std::size_t i = 0; i < libraries.size(); ++i)
    if (libraries[i].rfind(prefix, 0) == 0) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

TEST(RuntimeLinking, LibstdcxxComesBeforeTorchInEveryBinary) {
  for (const fs::path& binary : {fs::path(HEYGEMD_BINARY), fs::path(HEYGEMCTL_BINARY), fs::read_symlink("/proc/self/exe")}) {
    const auto needed = needed_libraries(binary);
    ASSERT_FALSE(needed.empty()) << "readelf found no NEEDED entries in " << binary << " (is binutils installed?)";
    const auto runtime = position_of(needed, "libstdc++.so");
    ASSERT_GE(runtime, 0) << binary << " does not link libstdc++ directly";
    for (const char* torch : {"libtorch", "libc10"}) {
      const auto at = position_of(needed, torch);
      if (at >= 0) {
        EXPECT_LT(runtime, at) << binary << ": " << needed[static_cast<std::size_t>(at)] << " comes before libstdc++";
      }
    }
  }
}

TEST(RuntimeLinking, RemoveAllRemovesANonEmptyTree) {
  (void)models::device_text(c10::Device(c10::kCPU));  // this binary uses libtorch, as heygemd does
  test::TempDir dir;
  const fs::path tree = dir.path() / "spool" / "job";
  fs::create_directories(tree / "scratch" / "deeper");
  for (const auto& file : {tree / "audio", tree / "scratch" / "frames.bin", tree / "scratch" / "deeper" / "x"})
    std::ofstream(file) << "data";
  EXPECT_EQ(fs::remove_all(dir.path() / "spool"), 7u);  // 4 folders, 3 files
  EXPECT_FALSE(fs::exists(dir.path() / "spool"));
}

}  // namespace
}  // namespace heygem::residency
