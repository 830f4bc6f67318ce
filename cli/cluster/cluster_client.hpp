#pragma once
// heygemctl's side of cluster mode (docs/cluster.md): submits, watches, lists, cancels and fetches
// jobs on a Redis Streams cluster, speaking the wire format of common/cluster/cluster_wire.hpp and
// answering with the same protocol types as the local daemon, so the renderers, --json and the
// exit codes are shared.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/render/progress.hpp"
#include "common/cluster/cluster_wire.hpp"
#include "common/cluster/redis_connection.hpp"
#include "common/protocol.hpp"

namespace heygem::cli {

// Where the cluster is: --cluster URL (or $HEYGEM_CLUSTER); the names default to heygemd.yaml's.
struct ClusterTarget {
  std::string address;                  // redis://[USER@]HOST[:PORT] or unix:/PATH
  std::string password_file;            // $HEYGEM_REDIS_PASSWORD_FILE ("" = no AUTH)
  cluster::ClusterNames names;          // $HEYGEM_CLUSTER_STREAM, ..._GROUP, ..._DEAD_LETTER
};

class ClusterClient {
 public:
  // Throws CliError(usage) for a bad address, CliError(unreachable) when Redis cannot be reached.
  explicit ClusterClient(const ClusterTarget& target);

  // Stores the inline inputs (`inline_data`: index 0 the audio, 1.. the videos; empty = path) with
  // `inline_ttl`, then queues the job. Returns the stream entry's id.
  std::string submit(const cluster::ClusterJobSpec& spec, const std::vector<std::string>& inline_data,
                     std::chrono::seconds inline_ttl);
  // Throws heygem::Error(not_found) for an unknown (or expired) job.
  protocol::JobStatus status(const std::string& job_id);
  // Oldest first; unfinished ones only unless `all`.
  std::vector<protocol::JobStatus> list(bool all);
  // The snapshot, then the job's events into `view` until the terminal one, which it returns.
  protocol::JobEvent follow(const std::string& job_id, render::ProgressView* view);
  // After cancel: the job's status (cancelled at once when queued; a running job's worker stops
  // it within a fraction of a second). Throws Error(invalid_argument) for a finished job.
  protocol::JobStatus cancel(const std::string& job_id);
  // The spec the job was submitted with (its output paths).
  cluster::ClusterJobSpec spec(const std::string& job_id);
  // Queue depth, pending entries, dead letters and workers ({"type":"cluster",...}).
  nlohmann::json summary();
  // One object per worker: its heartbeat and its consumer-group numbers.
  nlohmann::json workers();
  void ping();

 private:
  // A command, retried for a while when Redis is away (a restart), then CliError(unreachable).
  cluster::RedisValue command(const std::vector<std::string>& args,
                              std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  cluster::Fields hash(const std::string& job_id);

  ClusterTarget target_;
  cluster::RedisSession redis_;
};

}  // namespace heygem::cli
