#pragma once
// The `cluster:` section of heygemd.yaml (man heygemd.yaml(5), docs/cluster.md). Parsed and
// validated by daemon/config; read by the cluster worker.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace heygem::cluster {

// heygemd also takes jobs from a Redis stream. Off while address is "".
struct ClusterConfig {
  std::string address;                  // redis://HOST[:PORT] or unix:/PATH; "" = off
  std::string user;                     // Redis ACL user ("" = the default user)
  std::filesystem::path password_file;  // first line is the password ("" = no AUTH)
  std::string stream = "heygem:jobs";
  std::string group = "heygem";
  std::string dead_letter_stream = "heygem:dead";
  std::string consumer;                 // this worker's name in the group; "" = the host name
  std::chrono::milliseconds claim_idle{60'000};  // a silent worker's entries are taken over after this
  int max_attempts = 3;                 // runs per job; then the dead-letter stream
  std::vector<std::filesystem::path> media_roots;  // the shared storage inputs and outputs must lie in
  std::uint64_t max_inline_bytes = 16ULL << 20;     // per inline input
  int events_maxlen = 1000;             // entries kept in a job's events stream (approximate MAXLEN)
  std::chrono::milliseconds retention{7LL * 24 * 3600 * 1000};  // finished jobs' keys expire after this
  bool enabled() const { return !address.empty(); }
};

}  // namespace heygem::cluster
