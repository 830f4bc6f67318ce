// hash-init weights must be bit-identical to the fixture generator's (keys.json checks).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "common/sha256.hpp"
#include "daemon/models/hash_init.hpp"
#include "tests/support/fixtures.hpp"
#include "tests/support/hash_init_fixture.hpp"

namespace heygem::models {
namespace {

struct Keys {
  StateDict layout;
  nlohmann::json entries;
};

Keys read_keys(const std::string& folder) {
  std::ifstream in(test::fixtures_root() / folder / "keys.json");
  auto json = nlohmann::json::parse(in);
  Keys keys;
  keys.entries = json.contains("entries") ? json["entries"] : json;
  for (const auto& e : keys.entries) {
    auto shape = e.at("shape").get<std::vector<int64_t>>();
    keys.layout.emplace_back(e.at("name").get<std::string>(), at::empty(shape));
  }
  return keys;
}

HashInitSpec spec_of(const std::string& folder) { return test::hash_init_spec(folder); }

void expect_matches_keys(const std::string& folder) {
  Keys keys = read_keys(folder);
  const HashInitSpec spec = spec_of(folder);
  const auto spec_seed = spec.seed;
  StateDict values = hash_init(keys.layout, spec);
  ASSERT_EQ(values.size(), keys.entries.size());
  for (size_t k = 0; k < values.size(); ++k) {
    const auto& e = keys.entries[k];
    const at::Tensor& t = values[k].second;
    SCOPED_TRACE(values[k].first);
    if (t.scalar_type() == at::kLong) {
      EXPECT_EQ(t.item<int64_t>(), 0);
      continue;
    }
    // order-independent bit-pattern sum, as keys.json records it
    const auto* bits = reinterpret_cast<const uint32_t*>(t.data_ptr<float>());
    uint64_t bits_sum = 0;
    for (int64_t i = 0; i < t.numel(); ++i) bits_sum += bits[i];
    const auto& check = e.contains("check") ? e["check"] : e.at("check_seed" + std::to_string(spec_seed));
    const auto& expected = check.at("bits_sum_u64");
    uint64_t want = expected.is_string() ? std::stoull(expected.get<std::string>()) : expected.get<uint64_t>();
    EXPECT_EQ(bits_sum, want);
    double sum = 0;
    for (int64_t i = 0; i < t.numel(); ++i) sum += t.data_ptr<float>()[i];
    // The generator sums with numpy (pairwise): equal up to the summation order's rounding.
    const double expected_sum = check.at("sum_f64").get<double>();
    EXPECT_NEAR(sum, expected_sum, 1e-12 * std::max(1.0, std::abs(expected_sum)));
    // Bit-exact: the SHA-256 of the little-endian float32 bytes.
    if (check.contains("sha256"))
      EXPECT_EQ(sha256_hex(t.data_ptr<float>(), static_cast<std::size_t>(t.numel()) * sizeof(float)),
                check.at("sha256").get<std::string>());
  }
}

TEST(HashInit, Wav2LipKeysMatchBitForBit) { expect_matches_keys("wav2lip"); }
TEST(HashInit, S3fdKeysMatchBitForBit) { expect_matches_keys("s3fd"); }
TEST(HashInit, GfpganKeysMatchBitForBit) { expect_matches_keys("gfpgan"); }

TEST(HashInit, VectorsMatch) {
  std::ifstream in(test::fixtures_root() / "hash_init_vectors.json");
  auto json = nlohmann::json::parse(in);
  auto vectors = json.contains("vectors") ? json["vectors"] : json;
  ASSERT_FALSE(vectors.empty());
  for (const auto& v : vectors) {
    double u = hash_init_uniform(v.at("k").get<uint64_t>(), v.at("i").get<uint64_t>(), v.at("seed").get<uint32_t>());
    EXPECT_DOUBLE_EQ(u, v.at("u").get<double>());
  }
}

}  // namespace
}  // namespace heygem::models
