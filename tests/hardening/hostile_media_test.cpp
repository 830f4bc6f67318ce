// The hostile media corpus of scripts/hostile-media.sh through the real heygemd + heygemctl: each
// case fails with a message naming its cause (or succeeds where that is sensible), leaves no
// output file behind when it fails, and the daemon stays healthy with a clean spool.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/hardening/daemon_harness.hpp"

namespace heygem::test {
namespace {

namespace fs = std::filesystem;

struct HostileCase {
  std::string file, role, expectation, cause;
};

std::vector<HostileCase> read_cases(const fs::path& table) {
  std::ifstream in(table);
  std::vector<HostileCase> cases;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    HostileCase c;
    std::getline(fields, c.file, '\t');
    std::getline(fields, c.role, '\t');
    std::getline(fields, c.expectation, '\t');
    std::getline(fields, c.cause, '\t');
    cases.push_back(c);
  }
  return cases;
}

TEST(HostileMedia, EachCaseFailsCleanlyOrSucceedsAndTheDaemonStaysHealthy) {
  Daemon daemon;
  const fs::path corpus = daemon.work() / "hostile";
  const auto made = run_command({fs::path(HEYGEM_SOURCE_DIR) / "scripts" / "hostile-media.sh", corpus.string()});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto cases = read_cases(corpus / "cases.tsv");
  ASSERT_FALSE(cases.empty());
  const fs::path outputs = daemon.work() / "out";
  fs::create_directories(outputs);

  for (const auto& c : cases) {
    SCOPED_TRACE(c.file + " as the " + c.role);
    const bool as_video = c.role == "video";
    const fs::path audio = as_video ? corpus / "good_audio.wav" : corpus / c.file;
    const fs::path video = as_video ? corpus / c.file : corpus / "good_video.mp4";
    const fs::path output = outputs / (c.file + ".mp4");
    const auto result = daemon.ctl({"submit", "--force", "--box", "0,32,0,32", "--audio", audio.string(),
                                    video.string(), "-o", output.string()});
    const std::string message = result.out + result.err;
    if (result.exit_code == 0) {
      EXPECT_EQ(c.expectation, "either") << "accepted input that should fail: " << message;
      EXPECT_TRUE(is_valid_video(output)) << "reported success without a valid output";
    } else {
      EXPECT_NE(result.exit_code, 9) << "an internal error is not a clean failure: " << message;
      EXPECT_GE(result.exit_code, 1);
      EXPECT_LE(result.exit_code, 8) << message;
      EXPECT_TRUE(std::regex_search(message, std::regex(c.cause, std::regex::extended | std::regex::icase)))
          << "the message does not name the cause (/" << c.cause << "/): " << message;
      EXPECT_FALSE(fs::exists(output)) << "a failed job left a partial output";
    }
    EXPECT_TRUE(daemon.ping()) << daemon.log_text();
    EXPECT_EQ(daemon.spool_problems(), std::vector<std::string>{});
  }
}

}  // namespace
}  // namespace heygem::test
