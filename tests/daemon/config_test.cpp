#include "daemon/config/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "common/errors.hpp"
#include "daemon/jobs/scheduler.hpp"
#include "tests/support/temp_dir.hpp"

namespace heygem::config {
namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_config(yaml, "test.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << yaml;
  return "";
}

TEST(Config, EmbeddedDefaultsParseAndDescribeTheModels) {
  const auto config = default_config();
  EXPECT_EQ(config.scheduler.max_concurrent_jobs, 0);  // auto
  EXPECT_EQ(config.socket.mode, 0660u);
  ASSERT_EQ(config.residency.models.size(), 2u);
  EXPECT_EQ(config.residency.default_generator, "wav2lip");
  EXPECT_EQ(config.residency.default_detector, "retinaface");
  EXPECT_TRUE(config.residency.models[0].weights.empty());
  EXPECT_EQ(config.residency.models[1].kind, residency::ModelKind::retinaface);
  EXPECT_FALSE(config.residency.models[1].keep_alive.has_value());
  EXPECT_EQ(config.residency.heartbeat_interval, std::chrono::seconds(300));
  EXPECT_EQ(config.residency.batching.max_wait, std::chrono::milliseconds(2));
  EXPECT_EQ(config.residency.batching.max_rows, 512);
  EXPECT_TRUE(config.residency.warm_pipeline);
}

TEST(Config, FileOverridesDefaultsKeyByKey) {
  const auto config = parse_config(
      "scheduler:\n  max_concurrent_jobs: 3\nretention:\n  max_bytes: 1.5G\n  max_age: 2h\n"
      "models:\n  memory_budget: 512M\n  heartbeat_interval: 1500ms\n  batch_wait: 5ms\n  max_batch: 64\n",
      "test.yaml");
  EXPECT_EQ(config.scheduler.max_concurrent_jobs, 3);
  EXPECT_EQ(config.scheduler.shutdown_timeout, std::chrono::seconds(30));  // untouched default
  EXPECT_EQ(config.retention.max_bytes, 3ULL << 29);
  EXPECT_EQ(config.retention.max_age, std::chrono::hours(2));
  EXPECT_EQ(config.residency.memory_budget_bytes, 512ULL << 20);
  EXPECT_EQ(config.residency.heartbeat_interval, std::chrono::milliseconds(1500));
  EXPECT_EQ(config.residency.batching.max_wait, std::chrono::milliseconds(5));
  EXPECT_EQ(config.residency.batching.max_rows, 64);
  EXPECT_EQ(config.residency.models.size(), 2u);
  EXPECT_TRUE(config.residency.warm_pipeline);  // untouched default
  EXPECT_FALSE(parse_config("models:\n  warm_pipeline: false\n", "test.yaml").residency.warm_pipeline);
}

TEST(Config, EntriesReplaceTheDefaultList) {
  const auto config = parse_config(
      "models:\n"
      "  default_generator: gan\n"
      "  default_detector: faces\n"
      "  entries:\n"
      "    - name: gan\n"
      "      kind: wav2lip\n"
      "      weights: /opt/w/wav2lip_gan.pth\n"
      "      keep_alive: 0\n"
      "      preload: false\n"
      "    - name: faces\n"
      "      kind: s3fd\n"
      "      keep_alive: 30m\n",
      "test.yaml");
  ASSERT_EQ(config.residency.models.size(), 2u);
  EXPECT_EQ(config.residency.models[0].keep_alive, std::chrono::milliseconds(0));
  EXPECT_FALSE(config.residency.models[0].preload);
  EXPECT_EQ(config.residency.models[1].kind, residency::ModelKind::s3fd);
  EXPECT_EQ(config.residency.models[1].keep_alive, std::chrono::minutes(30));
  EXPECT_EQ(config.residency.default_generator, "gan");
}

TEST(Config, UnknownKeyIsRejectedWithItsLine) {
  const auto message = error_of("scheduler:\n  max_concurrent_jobs: 2\n  max_concurent: 3\n");
  EXPECT_NE(message.find("test.yaml: line 3"), std::string::npos) << message;
  EXPECT_NE(message.find("scheduler.max_concurent"), std::string::npos) << message;
  EXPECT_NE(message.find("unknown key"), std::string::npos) << message;
}

TEST(Config, BadValuesNameKeyAndLine) {
  struct Case {
    std::string yaml, key;
    int line;
  };
  const std::vector<Case> cases{
      {"scheduler:\n  max_concurrent_jobs: zero\n", "scheduler.max_concurrent_jobs", 2},
      {"scheduler:\n  max_concurrent_jobs: 0\n", "scheduler.max_concurrent_jobs", 2},
      {"retention:\n  max_age: soon\n", "retention.max_age", 2},
      {"socket:\n  mode: \"0999\"\n", "socket.mode", 2},
      {"logging:\n  level: loud\n", "logging.level", 2},
      {"models:\n  entries:\n    - name: a\n      kind: wav2lip\n      device: tpu\n", "models.entries[0].device", 5},
      {"models:\n  entries:\n    - name: a\n      kind: gan\n", "models.entries[0].kind", 4},
      {"models:\n  entries:\n    - name: a\n      kind: wav2lip\n      colour: red\n", "models.entries[0].colour", 5},
      {"\nmodels:\n  default_generator: nope\n", "models.default_generator", 3},
      {"models:\n  default_detector: wav2lip\n", "models.default_detector", 2},
      {"models:\n  max_batch: 0\n", "models.max_batch", 2},
      {"models:\n  max_batch: 8x\n", "models.max_batch", 2},
      {"models:\n  batch_wait: soon\n", "models.batch_wait", 2},
      {"models:\n  warm_pipeline: sometimes\n", "models.warm_pipeline", 2},
      {"models:\n  device: gpu\n", "models.device", 2},
      {"models:\n  entries:\n    - name: a\n      kind: wav2lip\n      devices: [cpu, auto]\n", "models.entries[0].devices[1]", 5},
      {"models:\n  entries:\n    - name: a\n      kind: wav2lip\n      devices: [cpu:1, cpu:1]\n", "models.entries[0].devices[1]", 5},
      {"models:\n  entries:\n    - name: a\n      kind: wav2lip\n      device: cpu\n      devices: all\n", "models.entries[0].devices", 6},
  };
  for (const auto& c : cases) {
    const auto message = error_of(c.yaml);
    EXPECT_NE(message.find("line " + std::to_string(c.line) + ":"), std::string::npos) << message;
    EXPECT_NE(message.find("key " + c.key + ":"), std::string::npos) << message;
  }
}

// Issue 15 item 2: every entry defaults to models.device (auto unless set); an entry's own device
// or devices wins. Lists give one replica per device ("cpu:0" is "cpu", "cuda" is "cuda:0").
TEST(Config, ModelsDeviceIsTheDefaultOfEveryEntryAndEntriesOverrideIt) {
  const auto defaults = parse_config("", "test.yaml");
  for (const auto& spec : defaults.residency.models) EXPECT_EQ(spec.devices, std::vector<std::string>{"auto"}) << spec.name;

  const auto global = parse_config("models:\n  device: [cpu:0, cpu:1]\n", "test.yaml");
  for (const auto& spec : global.residency.models)
    EXPECT_EQ(spec.devices, (std::vector<std::string>{"cpu", "cpu:1"})) << spec.name;

  const auto mixed = parse_config(
      "models:\n  device: cuda\n  entries:\n"
      "    - {name: wav2lip, kind: wav2lip}\n"
      "    - {name: retinaface, kind: retinaface, weights: r.pth, device: CPU}\n"
      "    - {name: everywhere, kind: s3fd, weights: s.pth, devices: all}\n",
      "test.yaml");
  ASSERT_EQ(mixed.residency.models.size(), 3u);
  EXPECT_EQ(mixed.residency.models[0].devices, std::vector<std::string>{"cuda:0"});
  EXPECT_EQ(mixed.residency.models[1].devices, std::vector<std::string>{"cpu"});
  EXPECT_EQ(mixed.residency.models[2].devices, std::vector<std::string>{"all"});
}

TEST(Config, MaxConcurrentJobsAutoIsOneOnACpuReplicaAndFourOnAGpu) {
  const auto automatic = parse_config("scheduler:\n  max_concurrent_jobs: auto\n", "test.yaml");
  EXPECT_EQ(automatic.scheduler.max_concurrent_jobs, jobs::kMaxConcurrentJobsAuto);
  const int setting = automatic.scheduler.max_concurrent_jobs;
  EXPECT_EQ(jobs::concurrent_jobs_on("cpu", setting), 1);
  EXPECT_EQ(jobs::concurrent_jobs_on("cpu:1", setting), 1);
  EXPECT_EQ(jobs::concurrent_jobs_on("cuda:0", setting), 4);
  EXPECT_EQ(jobs::concurrent_jobs_on("cuda:3", setting), jobs::kGpuDefaultConcurrentJobs);
  // A number applies to every device.
  const auto fixed = parse_config("scheduler:\n  max_concurrent_jobs: 3\n", "test.yaml");
  EXPECT_EQ(jobs::concurrent_jobs_on("cpu:1", fixed.scheduler.max_concurrent_jobs), 3);
  EXPECT_EQ(jobs::concurrent_jobs_on("cuda:0", fixed.scheduler.max_concurrent_jobs), 3);
  const auto message = error_of("scheduler:\n  max_concurrent_jobs: automatic\n");
  EXPECT_NE(message.find("line 2"), std::string::npos) << message;
  EXPECT_NE(message.find("auto"), std::string::npos) << message;
}

TEST(Config, DefaultNamesMustExistAfterEntriesChange) {
  const auto message = error_of("models:\n  entries:\n    - name: only\n      kind: wav2lip\n");
  EXPECT_NE(message.find("models.default_generator"), std::string::npos) << message;
  EXPECT_NE(message.find("embedded defaults"), std::string::npos) << message;
}

TEST(Config, GfpganEntriesAndTheEnhanceDefault) {
  const std::string entries =
      "models:\n  entries:\n    - name: wav2lip\n      kind: wav2lip\n    - name: retinaface\n"
      "      kind: retinaface\n      weights: r.pth\n";
  const std::string gfpgan = "    - name: restorer\n      kind: gfpgan\n      weights: GFPGANv1.4.pth\n";
  const auto config = parse_config(entries + gfpgan + "  default_enhance: true\n", "test.yaml");
  EXPECT_EQ(config.residency.models.at(2).kind, residency::ModelKind::gfpgan);
  EXPECT_TRUE(config.residency.default_enhance);
  EXPECT_TRUE(config.residency.default_restorer.empty());  // the only gfpgan entry is used
  EXPECT_FALSE(default_config().residency.default_enhance);

  // default_enhance without a gfpgan entry names the weights file to bring.
  const auto missing = error_of(entries + "  default_enhance: true\n");
  EXPECT_NE(missing.find("GFPGANv1.4.pth"), std::string::npos) << missing;
  EXPECT_NE(missing.find("models.default_enhance"), std::string::npos) << missing;
  // default_restorer must name a gfpgan entry.
  const auto wrong = error_of(entries + gfpgan + "  default_restorer: wav2lip\n");
  EXPECT_NE(wrong.find("not a face restorer"), std::string::npos) << wrong;
  // Two restorers and the default on: which one must be said.
  const auto two = error_of(entries + gfpgan + "    - name: other\n      kind: gfpgan\n      weights: b.pth\n" +
                            "  default_enhance: true\n");
  EXPECT_NE(two.find("default_restorer"), std::string::npos) << two;
}

TEST(Config, InvalidYamlNamesTheLine) {
  const auto message = error_of("scheduler:\n  max_concurrent_jobs: [1,\n");
  EXPECT_NE(message.find("test.yaml: line"), std::string::npos) << message;
  EXPECT_NE(message.find("invalid YAML"), std::string::npos) << message;
}

TEST(Config, MissingFileIsNamed) {
  try {
    load_config_file("/nonexistent/heygemd.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/heygemd.yaml"), std::string::npos);
  }
}

TEST(Config, DurationsAndSizes) {
  EXPECT_EQ(parse_duration("250ms"), std::chrono::milliseconds(250));
  EXPECT_EQ(parse_duration("90"), std::chrono::seconds(90));
  EXPECT_EQ(parse_duration("7d"), std::chrono::hours(168));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_FALSE(parse_duration("5 parsecs"));
  EXPECT_EQ(parse_bytes("64K"), 65536u);
  EXPECT_EQ(parse_bytes("1GiB"), 1ULL << 30);
  EXPECT_EQ(parse_bytes("2MB"), 2ULL << 20);
  EXPECT_FALSE(parse_bytes("lots"));
}

TEST(Config, ResolvePathsFillsDefaultsAndResolvesWeights) {
  test::TempDir dir;
  auto config = parse_config("state_dir: " + dir.path().string() + "\n", "test.yaml");
  std::filesystem::create_directories(dir.path() / "models");
  std::ofstream(dir.path() / "models" / "retinaface_mobilenet0.25.pth") << "x";
  resolve_paths(config, 1000);
  EXPECT_FALSE(config.socket.path.empty());
  EXPECT_EQ(config.residency.models[1].weights, dir.path() / "models" / "retinaface_mobilenet0.25.pth");
  EXPECT_TRUE(config.residency.models[0].weights.empty());
}

TEST(Config, AvatarCacheDirectoryDefaultsToTheCacheDirectoryThenTheStateDir) {
  test::TempDir dir;
  const std::string yaml = "state_dir: " + dir.path().string() + "\n";
  EXPECT_EQ(parse_config(yaml, "test.yaml").avatar_cache.max_bytes, 64ULL << 20);
  EXPECT_EQ(parse_config(yaml + "avatar_cache:\n  max_bytes: 0\n", "test.yaml").avatar_cache.max_bytes, 0u);
  const char* saved = std::getenv("CACHE_DIRECTORY");
  const std::string previous = saved ? saved : "";
  ::unsetenv("CACHE_DIRECTORY");
  auto plain = parse_config(yaml, "test.yaml");
  resolve_paths(plain, 1000);
  EXPECT_EQ(plain.avatar_cache.directory, dir.path() / "avatar-cache");
  ::setenv("CACHE_DIRECTORY", "/var/cache/heygem:/var/cache/other", 1);  // systemd's CacheDirectory=
  auto service = parse_config(yaml, "test.yaml");
  resolve_paths(service, 1000);
  EXPECT_EQ(service.avatar_cache.directory, std::filesystem::path("/var/cache/heygem/avatar-cache"));
  auto chosen = parse_config(yaml + "avatar_cache:\n  directory: /srv/faces\n", "test.yaml");
  resolve_paths(chosen, 1000);
  EXPECT_EQ(chosen.avatar_cache.directory, std::filesystem::path("/srv/faces"));
  if (saved) ::setenv("CACHE_DIRECTORY", previous.c_str(), 1);
  else ::unsetenv("CACHE_DIRECTORY");
  EXPECT_NE(error_of("avatar_cache:\n  max_bytes: lots\n").find("avatar_cache.max_bytes"), std::string::npos);
}

// heygemd.yaml(5) cluster: the keys as documented, the password never in the YAML, the media roots
// required with an address, the bounds, one ACL user.
TEST(Config, ClusterSectionAsDocumented) {
  const auto off = parse_config("", "test.yaml");
  EXPECT_FALSE(off.cluster.enabled());
  EXPECT_EQ(off.cluster.stream, "heygem:jobs");
  EXPECT_EQ(off.cluster.group, "heygem");
  EXPECT_EQ(off.cluster.dead_letter_stream, "heygem:dead");
  EXPECT_EQ(off.cluster.claim_idle, std::chrono::seconds(60));
  EXPECT_EQ(off.cluster.max_attempts, 3);
  EXPECT_EQ(off.cluster.max_inline_bytes, 16ULL << 20);
  EXPECT_EQ(off.cluster.events_maxlen, 1000);
  EXPECT_EQ(off.cluster.retention, std::chrono::hours(7 * 24));
  const auto on = parse_config(
      "cluster:\n  address: \"redis://heygem@redis.internal:6380\"\n  consumer: box-1\n  claim_idle: 5s\n"
      "  max_attempts: 5\n  media_roots: [/srv/media, /mnt/other/]\n  max_inline_bytes: 1M\n  password_file: /etc/heygem/pw\n",
      "test.yaml");
  EXPECT_TRUE(on.cluster.enabled());
  EXPECT_EQ(on.cluster.consumer, "box-1");
  EXPECT_EQ(on.cluster.claim_idle, std::chrono::seconds(5));
  EXPECT_EQ(on.cluster.max_attempts, 5);
  ASSERT_EQ(on.cluster.media_roots.size(), 2u);
  EXPECT_EQ(on.cluster.media_roots[0], "/srv/media");
  EXPECT_EQ(on.cluster.max_inline_bytes, 1ULL << 20);
  EXPECT_EQ(on.cluster.password_file, "/etc/heygem/pw");
  // The same user in both places is fine.
  EXPECT_NO_THROW(parse_config("cluster:\n  address: \"redis://heygem@h\"\n  user: heygem\n  media_roots: [/srv]\n",
                               "test.yaml"));
}

TEST(Config, ClusterMistakesNameTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"cluster:\n  address: \"redis://h\"\n  password: hunter2\n  media_roots: [/srv]\n", "password_file"},
      {"cluster:\n  address: \"redis://h\"\n", "cluster.media_roots"},
      {"cluster:\n  address: \"http://h\"\n  media_roots: [/srv]\n", "cluster.address"},
      {"cluster:\n  address: \"redis://u:secret@h\"\n  media_roots: [/srv]\n", "cluster.address"},
      {"cluster:\n  address: \"redis://h\"\n  media_roots: [srv/media]\n", "cluster.media_roots[0]"},
      {"cluster:\n  claim_idle: 100ms\n", "cluster.claim_idle"},
      {"cluster:\n  max_attempts: 0\n", "cluster.max_attempts"},
      {"cluster:\n  max_inline_bytes: 1G\n", "cluster.max_inline_bytes"},
      {"cluster:\n  events_maxlen: 5\n", "cluster.events_maxlen"},
      {"cluster:\n  stream: \"has space\"\n", "cluster.stream"},
      {"cluster:\n  colour: red\n", "cluster.colour"},
      {"cluster:\n  address: \"redis://alice@h\"\n  user: bob\n  media_roots: [/srv]\n", "cluster.user"},
  };
  for (const auto& [yaml, key] : cases) {
    const auto message = error_of(yaml);
    EXPECT_NE(message.find(key), std::string::npos) << yaml << " -> " << message;
  }
}

}  // namespace
}  // namespace heygem::config
