// Outputs are never overwritten without --force, and leave nothing behind unless kept.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "cli/lib/cli_error.hpp"
#include "cli/lib/local_files.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::cli {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

TEST(OutputFile, RefusesToOverwriteWithoutForce) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  write_file(path, "precious");
  try {
    OutputFile::create(path, false);
    FAIL() << "an existing output was opened";
  } catch (const CliError& error) {
    EXPECT_EQ(error.exit_code(), ExitCode::local_file);
    EXPECT_NE(std::string(error.what()).find("exists (use --force to overwrite)"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find(path.string()), std::string::npos);
  }
  EXPECT_EQ(read_file(path), "precious");  // untouched, and not removed by the failed attempt
}

TEST(OutputFile, ForceTruncatesAndKeepKeeps) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  write_file(path, "old contents");
  {
    OutputFile output = OutputFile::create(path, true);
    ASSERT_EQ(::write(output.fd(), "new", 3), 3);
    output.keep();
  }
  EXPECT_EQ(read_file(path), "new");
}

TEST(OutputFile, RemovedUnlessKept) {
  test::TempDir dir;
  const auto path = dir.path() / "partial.mp4";
  {
    OutputFile output = OutputFile::create(path, false);
    ASSERT_EQ(::write(output.fd(), "half", 4), 4);
    OutputFile moved(std::move(output));  // ownership moves, the file is removed once
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(OutputFile, MissingFolderIsALocalFileError) {
  test::TempDir dir;
  try {
    OutputFile::create(dir.path() / "no" / "such" / "out.mp4", false);
    FAIL();
  } catch (const CliError& error) {
    EXPECT_EQ(error.exit_code(), ExitCode::local_file);
  }
}

TEST(OpenInput, OnlyReadableRegularFiles) {
  test::TempDir dir;
  write_file(dir.path() / "a.wav", "RIFF");
  EXPECT_TRUE(open_input(dir.path() / "a.wav").valid());
  for (const auto& bad : {dir.path(), dir.path() / "missing.wav"}) {
    try {
      open_input(bad);
      FAIL() << bad;
    } catch (const CliError& error) {
      EXPECT_EQ(error.exit_code(), ExitCode::local_file);
      EXPECT_NE(std::string(error.what()).find(bad.string()), std::string::npos);
    }
  }
}

TEST(PlanOutputs, NamesFollowTheVideoStem) {
  EXPECT_EQ(output_name_for("/x/y/clip.take2.mp4"), "clip.take2.lipsync.mp4");
  EXPECT_EQ(output_name_for("photo.png"), "photo.lipsync.mp4");
}

}  // namespace
}  // namespace heygem::cli
