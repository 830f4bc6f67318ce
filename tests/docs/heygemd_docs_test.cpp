// heygemd(8) against `heygemd --help`: every option is documented, none that does not exist.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace heygem::test
