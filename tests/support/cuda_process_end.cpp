// Linked into every test binary. On the H200 (torch 2.11, CUDA 13) a test process that had run CUDA
// work from a pipeline thread crashed after its last test had passed and gtest had printed the
// summary: a call through a null pointer (pc 0x0, main thread) while the CUDA libraries' static
// objects were being destroyed. Nothing of ours runs at that point. So a test process that used
// CUDA (HEYGEM_TEST_DEVICE=cuda...) ends right after gtest's own end, with gtest's verdict as the
// exit code, skipping the libraries' static teardown. CPU and sanitizer runs (which never set a
// CUDA device, and whose leak check runs at exit) end normally.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

bool testing_on_cuda() {
  const char* device = std::getenv("HEYGEM_TEST_DEVICE");
  return device && std::string_view(device).starts_with("cuda");
}

class EndBeforeCudaTeardown : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest& unit) override {
    std::fflush(nullptr);
    std::_Exit(unit.Passed() ? 0 : 1);
  }
};

struct Install {
  Install() {
    if (!testing_on_cuda()) return;
    // gtest owns the listener; appended last, it runs after the default printer's summary
    ::testing::UnitTest::GetInstance()->listeners().Append(new EndBeforeCudaTeardown);
  }
};
const Install install_at_start;

}  // namespace
