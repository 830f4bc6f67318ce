#pragma once
// The cluster's wire format on Redis (docs/cluster.md), shared by heygemd's cluster worker and
// heygemctl --cluster: key names, the job spec carried by a stream entry, the per-job hash and
// events stream, and the Lua scripts that change a job's state atomically.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/protocol.hpp"

namespace heygem::cluster {

inline constexpr int kWireVersion = 1;
inline constexpr std::size_t kMaxSpecBytes = 256 * 1024;  // a spec names paths, never carries media
inline constexpr std::size_t kMaxPathBytes = 4096;

// Every key hangs off the stream's name, so one Redis can hold several clusters.
struct ClusterNames {
  std::string stream = "heygem:jobs";
  std::string group = "heygem";
  std::string dead_letter = "heygem:dead";

  std::string job_key(const std::string& id) const { return stream + ":job:" + id; }        // hash
  std::string events_key(const std::string& id) const { return job_key(id) + ":events"; }   // stream
  // Inline inputs: index 0 is the audio, 1..N the videos.
  std::string input_key(const std::string& id, std::size_t index) const {
    return job_key(id) + ":input:" + std::to_string(index);
  }
  std::string index_key() const { return stream + ":index"; }      // zset: job id by submit time (ms)
  std::string workers_key() const { return stream + ":workers"; }  // hash: consumer -> heartbeat JSON
};

// An input: a path under the shared storage, or bytes carried inline in Redis.
struct MediaRef {
  std::string path;                         // absolute; "" when inline
  std::optional<std::uint64_t> inline_bytes;  // set when inline (the size the producer stored)
  std::string name;                         // display name (inline: required; path: its basename)
};

// What one stream entry asks for; the options validated once, by the protocol's own parser.
struct ClusterJobSpec {
  std::string job_id;
  MediaRef audio;
  std::vector<MediaRef> videos;
  std::vector<std::string> outputs;  // one absolute path per video
  protocol::SubmitOptions options;
};

nlohmann::json to_json(const ClusterJobSpec& spec);
// Strict, as the socket protocol: unknown keys, wrong types, relative paths, ".." components and
// bad option values are Error(invalid_argument) naming the field ("spec.videos[1].path: ...").
ClusterJobSpec parse_job_spec(std::string_view text);
// A worker's bound on inline inputs (cluster.max_inline_bytes): the spec states each inline input's
// size, so an oversize one is refused before a byte is read from Redis. Error(invalid_argument).
void check_inline_sizes(const ClusterJobSpec& spec, std::uint64_t max_inline_bytes);

// The job hash's states ("finishing": the output is being published; shown as running).
enum class HashState { queued, running, finishing, done, failed, cancelled };
std::optional<HashState> hash_state_from_string(std::string_view text);

using Fields = std::vector<std::pair<std::string, std::string>>;
std::string field(const Fields& fields, std::string_view name);  // "" when absent

// A job snapshot from its hash: the worker's last stored snapshot ("status") when there is one,
// with the hash's state, attempts, error and times over it; else built from the spec.
protocol::JobStatus job_status_from_hash(const std::string& job_id, const Fields& fields);

// One event of a job as stored in its events stream (field "event"): the protocol's JobEvent JSON.
std::string encode_event(const std::string& job_id, protocol::EventBody body);

// Lua scripts (EVAL). Their KEYS and ARGV are listed in cluster_wire.cpp beside each.
extern const char* const kSubmitScript;
extern const char* const kBeginScript;
extern const char* const kFenceScript;
extern const char* const kFinishScript;
extern const char* const kRequeueScript;
extern const char* const kDeadLetterScript;
extern const char* const kCancelScript;
extern const char* const kKeepAliveScript;

}  // namespace heygem::cluster
