// Every man page renders with no warning in groff (-ww: all warnings) and mandoc (-Tlint: every
// message, style included), and `man ./man/PAGE` can read it from the source tree.
#include <gtest/gtest.h>

#include "tests/docs/doc_tools.hpp"

namespace heygem::test {
namespace {

class ManPageRendering : public ::testing::TestWithParam<std::string> {
 protected:
  std::string page() const { return (std::filesystem::path(HEYGEM_SOURCE_DIR) / "man" / GetParam()).string(); }
};

TEST_P(ManPageRendering, GroffWarnsAboutNothing) {
  const auto result = run_command({HEYGEM_GROFF, "-man", "-ww", "-z", page()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.err, "");
}

TEST_P(ManPageRendering, MandocLintFindsNothing) {
  const auto result = run_command({HEYGEM_MANDOC, "-Tlint", page()});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out + result.err, "");
}

TEST_P(ManPageRendering, RendersItsNameSection) {
  // What `man ./man/PAGE` shows: the page, with its NAME line, as plain text.
  const auto result = run_command({HEYGEM_MANDOC, "-Tascii", page()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto name = GetParam().substr(0, GetParam().rfind('.'));
  EXPECT_NE(result.out.find(name + " - "), std::string::npos) << result.out.substr(0, 400);
}

INSTANTIATE_TEST_SUITE_P(Pages, ManPageRendering, ::testing::Values("heygemctl.1", "heygemd.8", "heygemd.yaml.5"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (auto& c : name)
                             if (c == '.') c = '_';
                           return name;
                         });

}  // namespace
}  // namespace heygem::test
