// heygemd(8) against `heygemd --help`: every option is documented, none that does not exist.
#include <gtest/gtest.h>

#include <stdexcept>

#include "tests/docs/doc_tools.hpp"

namespace heygem::test {
namespace {

TEST(HeygemdManPage, DocumentsEveryOptionAndNoOther) {
  const auto result = run_command({HEYGEMD_BINARY, "--help"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto help = parse_help(result.out);
  ASSERT_FALSE(help.options.empty()) << result.out;

  const auto page = parse_man_page(std::filesystem::path(HEYGEM_SOURCE_DIR) / "man" / "heygemd.8");
  std::set<std::string> documented;
  for (const auto& entry : page.block("OPTIONS").entries)
    for (const auto& tag : entry.tags) documented.merge(tag_options(tag));
  std::set<std::string> existing;
  for (const auto& option : help.options)
    for (const auto& name : option.names) {
      existing.insert(name);
      EXPECT_TRUE(documented.count(name)) << "heygemd(8) OPTIONS lacks " << name;
    }
  for (const auto& name : documented)
    EXPECT_TRUE(existing.count(name)) << "heygemd(8) documents " << name << ", which heygemd --help lacks";
}

// The code heygemd(8) EXIT STATUS gives for the entry whose text starts with `start`.
int documented_exit_code(const std::string& start) {
  const auto page = parse_man_page(std::filesystem::path(HEYGEM_SOURCE_DIR) / "man" / "heygemd.8");
  for (const auto& entry : page.block("EXIT STATUS").entries)
    if (entry.body.rfind(start, 0) == 0) return std::stoi(entry.tags.at(0));
  throw std::runtime_error("heygemd(8) EXIT STATUS has no entry starting \"" + start + "\"");
}

TEST(HeygemdManPage, UsageErrorsExitAsDocumented) {
  const auto result = run_command({HEYGEMD_BINARY, "--no-such-option"});
  EXPECT_EQ(result.exit_code, documented_exit_code("A usage or configuration error")) << result.err;
}

TEST(HeygemdManPage, VersionAndCheckConfigExitAsDocumented) {
  EXPECT_EQ(run_command({HEYGEMD_BINARY, "--version"}).exit_code, 0);
  const auto info = run_command({HEYGEMD_BINARY, "--build-info"});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("libtorch "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("device: auto runs on "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("FFmpeg libavcodec "), std::string::npos) << info.out;
  const auto check = run_command({HEYGEMD_BINARY, "--check-config"});
  EXPECT_EQ(check.exit_code, documented_exit_code("Stopped cleanly")) << check.err;
}

}  // namespace
}  // namespace heygem::test
