// The cluster worker's media roots check (daemon/cluster/media_roots): a cluster job may only read
// and write files beneath cluster.media_roots. Paths outside every root, ".." that climbs out,
// symlinks (of the file or of a folder on the way) that leave the root, and things that are not
// regular files are refused with a reason; outputs appear under their final name only when
// published, and temporary files of earlier runs of the same job are removed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/errors.hpp"
#include "daemon/cluster/media_roots.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::cluster {
namespace {

namespace fs = std::filesystem;

class MediaRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "media";
    outside_ = dir_.path() / "outside";
    fs::create_directories(root_ / "in");
    fs::create_directories(root_ / "out");
    fs::create_directories(outside_);
    write(root_ / "in" / "speech.wav", "RIFF-inside");
    write(outside_ / "secret.wav", "secret");
  }
  static void write(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }
  static std::string read(int fd) {
    std::string text(64, '\0');
    const auto n = ::pread(fd, text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return text;
  }
  std::string in(const std::string& name) const { return (root_ / "in" / name).string(); }

  // The reason an open of `path` is refused with; fails the test when it opens.
  std::string input_refusal(const MediaRoots& roots, const std::string& path) {
    try {
      roots.open_input(path);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "opened " << path;
    return "";
  }
  std::string output_refusal(const MediaRoots& roots, const std::string& path) {
    try {
      roots.create_output(path, "a00000000001-run", "a00000000001");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "created " << path;
    return "";
  }

  test::TempDir dir_;
  fs::path root_, outside_;
};

#define EXPECT_CONTAINS(text, words) EXPECT_NE((text).find(words), std::string::npos) << (text)

TEST_F(MediaRootsTest, RootsMustBeAbsoluteExistingFolders) {
  EXPECT_THROW(MediaRoots({fs::path("media")}), Error);
  EXPECT_THROW(MediaRoots({root_ / "missing"}), Error);
  EXPECT_THROW(MediaRoots({root_ / "in" / "speech.wav"}), Error);
  EXPECT_NO_THROW(MediaRoots({root_}));
}

TEST_F(MediaRootsTest, InputsBeneathARootOpen) {
  const MediaRoots roots({root_});
  const auto fd = roots.open_input(in("speech.wav"));
  EXPECT_EQ(read(fd.get()), "RIFF-inside");
  // A symlink that stays beneath the root is fine (relative, inside).
  fs::create_symlink("speech.wav", root_ / "in" / "alias.wav");
  EXPECT_EQ(read(roots.open_input(in("alias.wav")).get()), "RIFF-inside");
}

TEST_F(MediaRootsTest, RootsGivenWithATrailingSlashOrTwoRootsWork) {
  fs::create_directories(dir_.path() / "second");
  write(dir_.path() / "second" / "v.mp4", "second");
  const MediaRoots roots({fs::path(root_.string() + "/"), dir_.path() / "second"});
  EXPECT_EQ(read(roots.open_input(in("speech.wav")).get()), "RIFF-inside");
  EXPECT_EQ(read(roots.open_input((dir_.path() / "second" / "v.mp4").string()).get()), "second");
}

TEST_F(MediaRootsTest, PathsOutsideEveryRootAreRefused) {
  const MediaRoots roots({root_});
  EXPECT_CONTAINS(input_refusal(roots, (outside_ / "secret.wav").string()), "outside cluster.media_roots");
  EXPECT_CONTAINS(input_refusal(roots, "/etc/passwd"), "outside cluster.media_roots");
  EXPECT_CONTAINS(input_refusal(roots, root_.string()), "outside cluster.media_roots");  // the root itself
  // A sibling whose name starts like the root's is not beneath it.
  fs::create_directories(dir_.path() / "media-other");
  write(dir_.path() / "media-other" / "x.wav", "x");
  EXPECT_CONTAINS(input_refusal(roots, (dir_.path() / "media-other" / "x.wav").string()), "outside cluster.media_roots");
  EXPECT_CONTAINS(output_refusal(roots, (outside_ / "out.mp4").string()), "outside cluster.media_roots");
  EXPECT_FALSE(fs::exists(outside_ / "out.mp4"));
}

TEST_F(MediaRootsTest, DotDotThatClimbsOutIsRefused) {
  const MediaRoots roots({root_});
  EXPECT_CONTAINS(input_refusal(roots, root_.string() + "/../outside/secret.wav"), "outside cluster.media_roots");
  EXPECT_CONTAINS(input_refusal(roots, root_.string() + "/in/../../outside/secret.wav"), "outside cluster.media_roots");
  EXPECT_CONTAINS(output_refusal(roots, root_.string() + "/out/../../outside/o.mp4"), "outside cluster.media_roots");
  EXPECT_FALSE(fs::exists(outside_ / "o.mp4"));
}

TEST_F(MediaRootsTest, SymlinksThatLeaveTheRootAreRefused) {
  const MediaRoots roots({root_});
  fs::create_symlink(outside_ / "secret.wav", root_ / "in" / "absolute.wav");
  fs::create_symlink("../../outside/secret.wav", root_ / "in" / "relative.wav");
  fs::create_symlink("/etc/hostname", root_ / "in" / "etc.wav");
  fs::create_symlink(outside_, root_ / "in" / "dir-link");
  fs::create_symlink(root_ / "in" / "speech.wav", root_ / "in" / "absolute-inside.wav");
  for (const auto* name : {"absolute.wav", "relative.wav", "etc.wav", "dir-link/secret.wav", "absolute-inside.wav"})
    EXPECT_CONTAINS(input_refusal(roots, in(name)), "leaves its media root");
  // An output folder reached through a link out of the root, or an output name that is a link.
  EXPECT_CONTAINS(output_refusal(roots, in("dir-link/o.mp4")), "leaves its media root");
  EXPECT_FALSE(fs::exists(outside_ / "o.mp4"));
  fs::create_symlink(outside_ / "target.mp4", root_ / "out" / "linked.mp4");
  EXPECT_CONTAINS(output_refusal(roots, (root_ / "out" / "linked.mp4").string()), "not a regular file");
  EXPECT_FALSE(fs::exists(outside_ / "target.mp4"));
}

TEST_F(MediaRootsTest, MissingFoldersAndSpecialFilesAreRefused) {
  const MediaRoots roots({root_});
  EXPECT_CONTAINS(input_refusal(roots, in("missing.wav")), "no such file");
  EXPECT_CONTAINS(input_refusal(roots, (root_ / "in").string()), "not a regular file");
  ASSERT_EQ(::mkfifo((root_ / "in" / "fifo.wav").c_str(), 0600), 0);
  EXPECT_CONTAINS(input_refusal(roots, in("fifo.wav")), "not a regular file");  // and the open did not block
  EXPECT_CONTAINS(output_refusal(roots, (root_ / "no-such-folder" / "o.mp4").string()), "no such file");
  EXPECT_CONTAINS(output_refusal(roots, (root_ / "in" / "speech.wav" / "o.mp4").string()), "not a folder");
  fs::create_directories(root_ / "out" / "taken.mp4");
  EXPECT_CONTAINS(output_refusal(roots, (root_ / "out" / "taken.mp4").string()), "not a regular file");
}

TEST_F(MediaRootsTest, AnOutputAppearsOnlyWhenPublished) {
  const MediaRoots roots({root_});
  const auto final_path = root_ / "out" / "face.mp4";
  {
    auto output = roots.create_output(final_path.string(), "a00000000001-aaaa", "a00000000001");
    auto fd = output.take_file();
    ASSERT_EQ(::write(fd.get(), "mp4", 3), 3);
    EXPECT_FALSE(fs::exists(final_path));
    EXPECT_TRUE(fs::exists(root_ / "out" / ".face.mp4.heygem-a00000000001-aaaa.part"));
    // Not published: the temporary file goes with it.
  }
  EXPECT_FALSE(fs::exists(final_path));
  EXPECT_TRUE(fs::is_empty(root_ / "out"));
  write(final_path, "old");
  auto output = roots.create_output(final_path.string(), "a00000000001-bbbb", "a00000000001");
  {
    auto fd = output.take_file();
    ASSERT_EQ(::write(fd.get(), "new", 3), 3);
  }
  output.publish();
  std::ifstream in(final_path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(root_ / "out"), fs::directory_iterator()), 1);
}

TEST_F(MediaRootsTest, TemporaryFilesOfEarlierRunsOfTheJobAreRemoved) {
  const MediaRoots roots({root_});
  const auto out = root_ / "out";
  write(out / ".face.mp4.heygem-a00000000001-dead.part", "stale");        // this job, a killed run
  write(out / ".face.mp4.heygem-b00000000002-live.part", "another job");  // someone else's
  write(out / ".face.mp4.heygem-a00000000001-dead", "not a part file");
  auto output = roots.create_output((out / "face.mp4").string(), "a00000000001-cccc", "a00000000001");
  EXPECT_FALSE(fs::exists(out / ".face.mp4.heygem-a00000000001-dead.part"));
  EXPECT_TRUE(fs::exists(out / ".face.mp4.heygem-b00000000002-live.part"));
  EXPECT_TRUE(fs::exists(out / ".face.mp4.heygem-a00000000001-dead"));
  // Two runs never share a temporary file.
  EXPECT_THROW(roots.create_output((out / "face.mp4").string(), "a00000000001-cccc", "z"), Error);
}

}  // namespace
}  // namespace heygem::cluster
