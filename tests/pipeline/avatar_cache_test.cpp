// The avatar cache on its own: round trip, a key that changes with each input, unusable files
// ignored (corrupt, truncated, foreign, another version, another key), and LRU eviction by bytes.
#include "daemon/pipeline/avatar_cache.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "common/errors.hpp"
#include "common/sha256.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::pipeline {
namespace {

AvatarKey key() { return AvatarKey{std::string(64, 'a'), "retinaface /m/r.pth size=1 mtime=2 cpu float32", 25, 1, 4}; }

AvatarBoxes boxes(int frames, bool complete = true) {
  AvatarBoxes out;
  for (int i = 0; i < frames; ++i) {
    if (i % 5 == 3) {
      out.faces.push_back(std::nullopt);  // a frame without a face
    } else {
      out.faces.push_back(RawFace{10.25f + i, 20.5f, 110.75f - i, 140.125f + 0.001f * i});
    }
  }
  out.complete = complete;
  return out;
}

std::string read(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const std::filesystem::path& file, const std::string& data) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << data;
}

TEST(AvatarCache, RoundTripKeepsEveryFaceBitExactly) {
  test::TempDir dir;
  const AvatarCache cache({dir.path() / "cache", 1 << 20});
  EXPECT_FALSE(cache.load(key()));
  const auto stored = boxes(75, false);
  cache.store(key(), stored);
  const auto loaded = cache.load(key());
  ASSERT_TRUE(loaded);
  EXPECT_EQ(*loaded, stored);
  EXPECT_EQ(cache.entry_path(key()).parent_path(), dir.path() / "cache");
  // only the entry: the temp file was renamed
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path() / "cache"), {}), 1);
}

TEST(AvatarCache, CoversAPrefixOnlyWhenIncomplete) {
  EXPECT_TRUE(boxes(10, true).covers(500));
  EXPECT_TRUE(boxes(10, false).covers(10));
  EXPECT_FALSE(boxes(10, false).covers(11));
}

TEST(AvatarCache, EachInputOfTheKeyChangesTheEntry) {
  test::TempDir dir;
  const AvatarCache cache({dir.path(), 1 << 20});
  cache.store(key(), boxes(5));
  std::vector<AvatarKey> others(5, key());
  others[0].video_sha256[0] = 'b';
  others[1].detector += " ";
  others[2].fps_num = 30;
  others[3].fps_den = 1001;
  others[4].detector_batch = 32;
  for (size_t i = 0; i < others.size(); ++i) {
    EXPECT_NE(cache.entry_path(others[i]), cache.entry_path(key())) << i;
    EXPECT_NE(others[i].text(), key().text()) << i;
    EXPECT_FALSE(cache.load(others[i])) << i;
  }
  EXPECT_TRUE(cache.load(key()));
}

TEST(AvatarCache, UnusableFilesAreIgnoredAndReplaced) {
  test::TempDir dir;
  const AvatarCache cache({dir.path(), 1 << 20});
  const auto file = cache.entry_path(key());
  cache.store(key(), boxes(20));
  const std::string good = read(file);

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x01;
  std::string other_version = good;
  other_version[8] = 2;  // the version field, with a checksum that matches again
  const auto sum = [] (std::string body) {
    Sha256 hash;
    hash.update(body.data(), body.size() - 32);
    const auto digest = hash.finish();
    body.replace(body.size() - 32, 32, std::string(digest.begin(), digest.end()));
    return body;
  };
  AvatarKey another = key();
  another.detector = "s3fd";
  cache.store(another, boxes(20));
  const std::string cases[] = {flipped, good.substr(0, good.size() - 7), "not a cache file", "", sum(other_version),
                               read(cache.entry_path(another))};
  for (size_t i = 0; i < std::size(cases); ++i) {
    write(file, cases[i]);
    EXPECT_FALSE(cache.load(key())) << "case " << i;
  }
  cache.store(key(), boxes(20));  // the recomputed faces replace the bad file
  EXPECT_EQ(cache.load(key()), boxes(20));
}

TEST(AvatarCache, EvictsTheLeastRecentlyUsedBeyondMaxBytes) {
  test::TempDir dir;
  AvatarCacheOptions options{dir.path(), 0};
  {
    const AvatarCache probe({dir.path() / "probe", 1 << 20});
    probe.store(key(), boxes(100));
    options.max_bytes = 2 * std::filesystem::file_size(probe.entry_path(key())) + 10;  // room for two
  }
  const AvatarCache cache(options);
  std::vector<AvatarKey> keys(3, key());
  for (size_t i = 0; i < keys.size(); ++i) keys[i].video_sha256[0] = static_cast<char>('a' + i);
  const auto age = [&](const AvatarKey& k, int seconds_ago) {
    std::filesystem::last_write_time(cache.entry_path(k),
                                     std::filesystem::file_time_type::clock::now() - std::chrono::seconds(seconds_ago));
  };
  cache.store(keys[0], boxes(100));
  age(keys[0], 300);
  cache.store(keys[1], boxes(100));
  age(keys[1], 200);
  ASSERT_TRUE(cache.load(keys[0]));  // a hit makes keys[0] the most recently used
  cache.store(keys[2], boxes(100));
  EXPECT_TRUE(std::filesystem::exists(cache.entry_path(keys[0])));
  EXPECT_FALSE(std::filesystem::exists(cache.entry_path(keys[1]))) << "the least recently used entry stays";
  EXPECT_TRUE(std::filesystem::exists(cache.entry_path(keys[2])));
}

TEST(AvatarCache, WeightsIdentityFollowsTheFile) {
  test::TempDir dir;
  const auto weights = dir.path() / "w.pth";
  write(weights, "1234");
  const auto before = weights_identity(weights);
  EXPECT_NE(before.find(weights.string()), std::string::npos);
  write(weights, "12345");
  EXPECT_NE(weights_identity(weights), before);
  EXPECT_THROW(weights_identity(dir.path() / "missing.pth"), Error);
}

}  // namespace
}  // namespace heygem::pipeline
