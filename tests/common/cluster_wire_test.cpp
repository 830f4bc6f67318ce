// The cluster's wire parser (common/cluster, docs/cluster.md) against hostile stream entries: a
// spec is whatever a producer put into Redis, so garbage, missing or unknown keys, wrong types,
// paths that are not plain absolute ones, bad options and oversize inline claims must all be
// refused with a reason that names the field, and a good spec must round-trip. Also the Redis
// address parser and a job's status read back from a hash that may be damaged.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cluster/cluster_wire.hpp"
#include "common/cluster/redis_connection.hpp"
#include "common/errors.hpp"

namespace heygem::cluster {
namespace {

using nlohmann::json;

json good_spec() {
  return json{{"version", 1},
              {"job_id", "3f9c0a12be47"},
              {"audio", {{"path", "/srv/media/speech.wav"}}},
              {"videos", json::array({{{"path", "/srv/media/face.mp4"}}, {{"inline", 81234}, {"name", "b.mp4"}}})},
              {"outputs", json::array({"/srv/media/out/face.mp4", "/srv/media/out/b.mp4"})},
              {"options", {{"crf", 23}, {"box", {10, 90, 20, 80}}}}};
}

// The message of the Error(invalid_argument) that parsing `text` throws; fails the test if it parses.
std::string refusal(const std::string& text) {
  try {
    parse_job_spec(text);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a heygem::Error: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << text.substr(0, 200);
  return "";
}

std::string refusal(const json& spec) { return refusal(spec.dump()); }

#define EXPECT_REFUSED(spec, words) \
  EXPECT_NE(refusal(spec).find(words), std::string::npos) << "expected the reason to contain: " << (words)

TEST(ClusterWire, GoodSpecParsesAndRoundTrips) {
  const auto spec = parse_job_spec(good_spec().dump());
  EXPECT_EQ(spec.job_id, "3f9c0a12be47");
  EXPECT_EQ(spec.audio.path, "/srv/media/speech.wav");
  EXPECT_EQ(spec.audio.name, "speech.wav");
  ASSERT_EQ(spec.videos.size(), 2u);
  EXPECT_EQ(spec.videos[0].name, "face.mp4");
  EXPECT_FALSE(spec.videos[0].inline_bytes);
  ASSERT_TRUE(spec.videos[1].inline_bytes);
  EXPECT_EQ(*spec.videos[1].inline_bytes, 81234u);
  EXPECT_EQ(spec.videos[1].name, "b.mp4");
  EXPECT_EQ(spec.outputs[1], "/srv/media/out/b.mp4");
  ASSERT_TRUE(spec.options.crf);
  EXPECT_EQ(*spec.options.crf, 23);
  ASSERT_TRUE(spec.options.box);
  const auto again = parse_job_spec(to_json(spec).dump());
  EXPECT_EQ(to_json(again), to_json(spec));
}

TEST(ClusterWire, OptionsMayBeLeftOut) {
  auto spec = good_spec();
  spec.erase("options");
  EXPECT_EQ(protocol::to_json(parse_job_spec(spec.dump()).options), protocol::to_json(protocol::SubmitOptions{}));
}

TEST(ClusterWire, GarbageIsRefused) {
  EXPECT_REFUSED(std::string("\x01garbage{{"), "not JSON");
  EXPECT_REFUSED(std::string(""), "not JSON");
  EXPECT_REFUSED(std::string("{\"version\":1,"), "not JSON");
  EXPECT_REFUSED(std::string("\xff\xfe{}"), "not JSON");
  EXPECT_REFUSED(std::string("[1,2,3]"), "expected a JSON object");
  EXPECT_REFUSED(std::string("\"spec\""), "expected a JSON object");
  EXPECT_REFUSED(std::string("null"), "expected a JSON object");
  EXPECT_REFUSED(std::string("42"), "expected a JSON object");
}

TEST(ClusterWire, OversizeSpecIsRefusedBeforeParsing) {
  std::string huge = "{\"version\":1,\"pad\":\"" + std::string(kMaxSpecBytes, 'x') + "\"}";
  EXPECT_REFUSED(huge, "more than the");
}

TEST(ClusterWire, EveryMissingFieldIsNamed) {
  for (const char* key : {"version", "job_id", "audio", "videos", "outputs"}) {
    auto spec = good_spec();
    spec.erase(key);
    EXPECT_REFUSED(spec, std::string("spec.") + key + ": missing");
  }
  EXPECT_REFUSED(json::object(), "missing");
}

TEST(ClusterWire, UnknownKeysAreRefusedAtEveryLevel) {
  auto top = good_spec();
  top["priority"] = 5;
  EXPECT_REFUSED(top, "spec.priority: unknown key");
  auto media = good_spec();
  media["audio"]["url"] = "http://example.com/a.wav";
  EXPECT_REFUSED(media, "spec.audio.url: unknown key");
  auto option = good_spec();
  option["options"]["warp"] = 9;
  EXPECT_REFUSED(option, "spec.options");
  EXPECT_REFUSED(option, "warp");
}

TEST(ClusterWire, WrongTypesAndValuesAreRefused) {
  const auto with = [](const std::string& key, const json& value) {
    auto spec = good_spec();
    spec[key] = value;
    return spec;
  };
  EXPECT_REFUSED(with("version", 2), "spec.version: expected 1");
  EXPECT_REFUSED(with("version", "1"), "spec.version");
  EXPECT_REFUSED(with("job_id", "3F9C0A12BE47"), "spec.job_id");
  EXPECT_REFUSED(with("job_id", "3f9c"), "spec.job_id");
  EXPECT_REFUSED(with("job_id", 12), "spec.job_id");
  EXPECT_REFUSED(with("job_id", "../../etc/x1"), "spec.job_id");
  EXPECT_REFUSED(with("audio", "/srv/media/speech.wav"), "spec.audio: expected an object");
  EXPECT_REFUSED(with("videos", json::array()), "spec.videos");
  EXPECT_REFUSED(with("videos", "/srv/media/face.mp4"), "spec.videos");
  json many = json::array();
  for (std::size_t i = 0; i <= protocol::kMaxItems; ++i) many.push_back({{"path", "/v" + std::to_string(i) + ".mp4"}});
  EXPECT_REFUSED(with("videos", many), "spec.videos");
  EXPECT_REFUSED(with("outputs", json::array({"/srv/media/out/face.mp4"})), "one output path per video");
  EXPECT_REFUSED(with("outputs", json::array({"/srv/out/a.mp4", "/srv/out/a.mp4"})), "named twice");
  EXPECT_REFUSED(with("outputs", json::array({"/srv/out/a.mp4", 7})), "spec.outputs[1]");
  EXPECT_REFUSED(with("options", json::array()), "spec.options");
  EXPECT_REFUSED(with("options", {{"crf", 99}}), "spec.options");
  EXPECT_REFUSED(with("options", {{"crf", "high"}}), "spec.options");
  EXPECT_REFUSED(with("options", {{"box", {1, 2}}}), "spec.options");
}

TEST(ClusterWire, PathsMustBePlainAbsoluteOnes) {
  const auto audio = [](const json& path) {
    auto spec = good_spec();
    spec["audio"] = {{"path", path}};
    return spec;
  };
  EXPECT_REFUSED(audio("speech.wav"), "expected an absolute path");
  EXPECT_REFUSED(audio(""), "expected an absolute path");
  EXPECT_REFUSED(audio("~/speech.wav"), "expected an absolute path");
  EXPECT_REFUSED(audio("/srv/media/../../etc/passwd"), "\"..\" is not allowed");
  EXPECT_REFUSED(audio("/srv/media/.."), "\"..\" is not allowed");
  EXPECT_REFUSED(audio("/srv/./media/speech.wav"), "\".\" is not allowed");
  EXPECT_REFUSED(audio("/srv/media/"), "names a folder");
  EXPECT_REFUSED(audio(std::string("/srv/media/a\nb.wav")), "control character");
  EXPECT_REFUSED(audio(std::string("/srv/media/a\0b.wav", 18)), "control character");
  EXPECT_REFUSED(audio("/" + std::string(kMaxPathBytes, 'a')), "longer than");
  EXPECT_REFUSED(audio(42), "expected a string");
  auto output = good_spec();
  output["outputs"][0] = "/srv/media/out/../../../etc/cron.d/x";
  EXPECT_REFUSED(output, "spec.outputs[0]");
  output["outputs"][0] = "out/face.mp4";
  EXPECT_REFUSED(output, "spec.outputs[0]: expected an absolute path");
  // Names that only look odd are fine: ".." inside a name is not a component.
  auto odd = good_spec();
  odd["audio"] = {{"path", "/srv/media/a..b/..wav"}};
  EXPECT_EQ(parse_job_spec(odd.dump()).audio.name, "..wav");
}

TEST(ClusterWire, AMediaRefIsEitherAPathOrInline) {
  const auto audio = [](const json& ref) {
    auto spec = good_spec();
    spec["audio"] = ref;
    return spec;
  };
  EXPECT_REFUSED(audio(json::object()), "exactly one of path and inline");
  EXPECT_REFUSED(audio({{"path", "/srv/media/a.wav"}, {"inline", 10}, {"name", "a.wav"}}), "exactly one of path and inline");
  EXPECT_REFUSED(audio({{"path", "/srv/media/a.wav"}, {"name", "b.wav"}}), "spec.audio.name: only with inline");
  EXPECT_REFUSED(audio({{"inline", 10}}), "spec.audio.name");
  EXPECT_REFUSED(audio({{"inline", 10}, {"name", 5}}), "spec.audio.name");
  EXPECT_REFUSED(audio({{"inline", 0}, {"name", "a.wav"}}), "spec.audio.inline");
  EXPECT_REFUSED(audio({{"inline", -5}, {"name", "a.wav"}}), "spec.audio.inline");
  EXPECT_REFUSED(audio({{"inline", 1.5}, {"name", "a.wav"}}), "spec.audio.inline");
  EXPECT_REFUSED(audio({{"inline", "10"}, {"name", "a.wav"}}), "spec.audio.inline");
  // A display name is a name, never a path.
  EXPECT_REFUSED(audio({{"inline", 10}, {"name", "../../etc/passwd"}}), "spec.audio.name");
  EXPECT_REFUSED(audio({{"inline", 10}, {"name", ""}}), "spec.audio.name");
}

TEST(ClusterWire, OversizeInlineClaimsAreRefusedByTheBound) {
  auto spec = good_spec();
  spec["audio"] = {{"inline", 10737418240ULL}, {"name", "huge.wav"}};  // 10 GB
  const auto parsed = parse_job_spec(spec.dump());                      // the size is the worker's check
  try {
    check_inline_sizes(parsed, 16ULL << 20);
    ADD_FAILURE() << "a 10 GB inline claim passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("huge.wav claims 10737418240 bytes, more than cluster.max_inline_bytes"),
              std::string::npos)
        << e.what();
  }
  // The bound counts each input; one exactly at it passes, the videos are checked too.
  auto at_bound = good_spec();
  at_bound["videos"][1]["inline"] = 1000;
  EXPECT_NO_THROW(check_inline_sizes(parse_job_spec(at_bound.dump()), 1000));
  EXPECT_THROW(check_inline_sizes(parse_job_spec(at_bound.dump()), 999), Error);
  auto too_big = good_spec();
  too_big["videos"][1]["inline"] = 18446744073709551615ULL;
  EXPECT_THROW(check_inline_sizes(parse_job_spec(too_big.dump()), 16ULL << 20), Error);
}

TEST(ClusterWire, StatusFromADamagedHashStillAnswers) {
  // A hash a producer wrote by hand, or one whose spec this version cannot read.
  const auto status = job_status_from_hash("a00000000001", {{"state", "failed"}, {"spec", "{garbage"},
                                                            {"error", "spec: not JSON"}, {"attempts", "x"},
                                                            {"status", "[not a status]"}});
  EXPECT_EQ(status.job_id, "a00000000001");
  EXPECT_EQ(status.state, protocol::JobState::failed);
  EXPECT_EQ(status.error, "spec: not JSON");
  EXPECT_EQ(status.attempts, 0);
  EXPECT_EQ(status.audio_name, "?");
  EXPECT_EQ(job_status_from_hash("a00000000001", {{"state", "weird"}}).state, protocol::JobState::queued);
  EXPECT_EQ(job_status_from_hash("a00000000001", {{"state", "finishing"}}).state, protocol::JobState::running);
  const auto fine = job_status_from_hash("3f9c0a12be47", {{"state", "queued"}, {"spec", good_spec().dump()}});
  ASSERT_EQ(fine.items.size(), 2u);
  EXPECT_EQ(fine.items[1].output_name, "b.mp4");
}

TEST(ClusterWire, RedisAddresses) {
  const auto tcp = parse_redis_address("redis://redis.internal:6380");
  EXPECT_EQ(tcp.host, "redis.internal");
  EXPECT_EQ(tcp.port, 6380);
  EXPECT_EQ(parse_redis_address("redis://127.0.0.1").port, 6379);
  EXPECT_EQ(parse_redis_address("redis://heygem@h:1/0").user, "heygem");
  EXPECT_EQ(parse_redis_address("redis://[::1]:7000").host, "::1");
  EXPECT_EQ(parse_redis_address("unix:/run/redis/redis.sock").unix_socket, "/run/redis/redis.sock");
  EXPECT_EQ(parse_redis_address("unix:///run/redis.sock").unix_socket, "/run/redis.sock");
  for (const char* bad : {"", "redis.internal:6379", "http://h", "redis://", "redis://h:0", "redis://h:65536",
                          "redis://h:port", "redis://user:secret@h", "redis://h/3", "unix:relative.sock", "redis://[::1"})
    EXPECT_THROW(parse_redis_address(bad), Error) << bad;
}

}  // namespace
}  // namespace heygem::cluster
