// SHA-256 against the FIPS 180-4 / NIST example digests, split updates, and files streamed in blocks.
#include "common/sha256.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/errors.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem {
namespace {

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(std::string("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex(std::string("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, SplitUpdatesEqualOneUpdate) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>(i * 7 + 3);
  const std::string whole = sha256_hex(text);
  for (const std::size_t step : {1u, 3u, 63u, 64u, 65u, 200u}) {
    Sha256 hash;
    for (std::size_t at = 0; at < text.size(); at += step) hash.update(text.data() + at, std::min(step, text.size() - at));
    EXPECT_EQ(Sha256::to_hex(hash.finish()), whole) << "step " << step;
  }
}

TEST(Sha256, FilesAreStreamed) {
  test::TempDir dir;
  const auto file = dir.path() / "data.bin";
  const std::string content(3 * (1 << 20) + 17, 'x');  // more than one read buffer
  std::ofstream(file, std::ios::binary) << content;
  EXPECT_EQ(sha256_file_hex(file), sha256_hex(content));
  EXPECT_THROW(sha256_file_hex(dir.path() / "missing"), Error);
}

}  // namespace
}  // namespace heygem
