// Replays every seed and every kept crash input of the fuzz targets in the ordinary build, so that a
// fixed bug stays fixed without clang or libFuzzer. A target must reject bad input with
// heygem::Error (caught inside the target); anything else escaping here is the bug coming back.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = fs::path(HEYGEM_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::uint8_t> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The regular files directly inside each folder that exists, sorted for a stable order.
std::vector<fs::path> inputs_in(const std::vector<fs::path>& folders) {
  std::vector<fs::path> files;
  for (const auto& folder : folders) {
    if (!fs::is_directory(folder)) continue;
    for (const auto& entry : fs::directory_iterator(folder))
      if (entry.is_regular_file() && entry.path().filename().string().front() != '.') files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<fs::path> seeds_and_regressions(const std::string& target) {
  return inputs_in({kFuzzDir / "corpus" / target, kFuzzDir / "regressions" / target});
}

template <typename Target>
void replay(const std::vector<fs::path>& files, Target target) {
  ASSERT_FALSE(files.empty()) << "no inputs to replay";
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    const auto bytes = read_bytes(file);
    EXPECT_NO_THROW(target(Bytes(bytes.data(), bytes.size())));
  }
}

TEST(FuzzRegressions, ProtocolInputs) { replay(seeds_and_regressions("protocol"), protocol_input); }

TEST(FuzzRegressions, ConfigInputs) { replay(seeds_and_regressions("config"), config_input); }

// The checkpoint seeds are the fixture files themselves (never copied into the repo).
TEST(FuzzRegressions, CheckpointInputs) {
  auto files = seeds_and_regressions("checkpoint");
  const auto fixtures = inputs_in({test::fixtures_root() / "checkpoints"});
  ASSERT_FALSE(fixtures.empty()) << "no checkpoint fixtures in " << (test::fixtures_root() / "checkpoints");
  files.insert(files.end(), fixtures.begin(), fixtures.end());
  replay(files, checkpoint_input);
}

// The properties the targets check must be able to fail: a payload accepted as a request really
// goes through the round trip (a broken one would throw PropertyViolation out of the target).
TEST(FuzzRegressions, TargetsRejectCleanlyAndAcceptValidInput) {
  const std::string frame_payload = R"({"type":"ping"})";
  std::vector<std::uint8_t> frame = {0, 0, 0, static_cast<std::uint8_t>(frame_payload.size())};
  frame.insert(frame.end(), frame_payload.begin(), frame_payload.end());
  EXPECT_NO_THROW(protocol_input(Bytes(frame.data(), frame.size())));
  const std::string bad_yaml = "scheduler: {max_concurrent_jobs: 0}\n";
  EXPECT_NO_THROW(config_input(Bytes(reinterpret_cast<const std::uint8_t*>(bad_yaml.data()), bad_yaml.size())));
}

}  // namespace
}  // namespace heygem::fuzz
