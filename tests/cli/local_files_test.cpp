// Outputs are never overwritten without --force, appear only complete, and never alias an input.
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

TEST(OutputFile, NothingAppearsAtThePathUntilPublished) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  {
    OutputFile output = OutputFile::create(path, false);
    ASSERT_EQ(::write(output.fd(), "half", 4), 4);
    OutputFile moved(std::move(output));  // ownership moves; still nothing at the path
    EXPECT_FALSE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a hidden temporary file was left behind";
}

TEST(OutputFile, PublishPutsTheWholeFileInPlace) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  OutputFile output = OutputFile::create(path, false);
  ASSERT_EQ(::write(output.fd(), "complete", 8), 8);
  EXPECT_FALSE(std::filesystem::exists(path));
  output.publish();
  EXPECT_EQ(read_file(path), "complete");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1) << "a temporary file was left";
}

TEST(OutputFile, ForceReplacesTheOldFileOnlyWhenPublished) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  write_file(path, "old contents");
  {
    OutputFile failed = OutputFile::create(path, true);
    ASSERT_EQ(::write(failed.fd(), "ne", 2), 2);
  }
  EXPECT_EQ(read_file(path), "old contents") << "a job that never finished touched the old file";
  OutputFile output = OutputFile::create(path, true);
  ASSERT_EQ(::write(output.fd(), "new", 3), 3);
  EXPECT_EQ(read_file(path), "old contents");
  output.publish();
  EXPECT_EQ(read_file(path), "new");
}

TEST(OutputFile, APathTakenWhileTheJobRanKeepsBothFiles) {
  test::TempDir dir;
  const auto path = dir.path() / "out.mp4";
  OutputFile output = OutputFile::create(path, false);
  ASSERT_EQ(::write(output.fd(), "result", 6), 6);
  write_file(path, "someone else's");
  try {
    output.publish();
    FAIL() << "the other file was replaced";
  } catch (const CliError& error) {
    EXPECT_EQ(error.exit_code(), ExitCode::local_file);
    const std::string message = error.what();
    EXPECT_NE(message.find("appeared while the job ran"), std::string::npos) << message;
    const auto kept_at = message.find("kept as ");
    ASSERT_NE(kept_at, std::string::npos) << message;
    const std::string kept = message.substr(kept_at + 8, message.find(" (use") - kept_at - 8);
    EXPECT_EQ(read_file(kept), "result");
  }
  EXPECT_EQ(read_file(path), "someone else's");
}

TEST(RefuseAliasedOutputs, TheSameFileByNameHardLinkOrSymlink) {
  test::TempDir dir;
  const auto video = dir.path() / "self.mp4";
  write_file(video, "video");
  const UniqueFd fd = open_input(video);
  const std::vector<std::pair<std::string, FileIdentity>> inputs{{"the video self.mp4", identity_of(fd.get())}};
  std::filesystem::create_hard_link(video, dir.path() / "hard.mp4");
  std::filesystem::create_symlink(video, dir.path() / "soft.mp4");
  for (const char* name : {"self.mp4", "hard.mp4", "soft.mp4"}) {
    try {
      refuse_aliased_outputs({dir.path() / name}, inputs);
      FAIL() << name << " was accepted as the output";
    } catch (const CliError& error) {
      EXPECT_EQ(error.exit_code(), ExitCode::local_file);
      EXPECT_NE(std::string(error.what()).find("is the same file as the video self.mp4"), std::string::npos)
          << error.what();
    }
  }
  EXPECT_EQ(read_file(video), "video");
  EXPECT_NO_THROW(refuse_aliased_outputs({dir.path() / "new.mp4"}, inputs));
  write_file(dir.path() / "a.mp4", "a");
  std::filesystem::create_hard_link(dir.path() / "a.mp4", dir.path() / "b.mp4");
  EXPECT_THROW(refuse_aliased_outputs({dir.path() / "a.mp4", dir.path() / "b.mp4"}, {}), CliError);
}

TEST(CreatedFolder, ATrailingSlashCreatesTheFolderAndAnEmptyOneGoesAgain) {
  test::TempDir dir;
  {
    CreatedFolder folder = CreatedFolder::for_target("out/", dir.path());
    EXPECT_TRUE(std::filesystem::is_directory(dir.path() / "out"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "out")) << "an empty folder we created stayed";
  {
    CreatedFolder folder = CreatedFolder::for_target("kept/", dir.path());
    write_file(dir.path() / "kept" / "x.lipsync.mp4", "x");
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "kept" / "x.lipsync.mp4"));
  std::filesystem::create_directory(dir.path() / "mine");
  { CreatedFolder folder = CreatedFolder::for_target("mine/", dir.path()); }
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() / "mine")) << "a folder we did not create was removed";
  try {
    CreatedFolder::for_target("no/such/", dir.path());
    FAIL();
  } catch (const CliError& error) {
    EXPECT_EQ(error.exit_code(), ExitCode::local_file);
    EXPECT_NE(std::string(error.what()).find("does not exist"), std::string::npos) << error.what();
  }
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
