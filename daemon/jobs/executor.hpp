#pragma once
// What the scheduler needs from whatever runs a job's items (the real one: item_executor.hpp,
// which acquires model leases from the ModelRegistry and calls pipeline::run_lip_sync).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/jobs/job.hpp"
#include "daemon/jobs/spool.hpp"

namespace heygem::jobs {

struct ItemProgressEvent {
  std::string stage;  // "audio", "render", "finalize"
  std::int64_t frames_done = 0, frames_total = 0;
  double fps = 0, eta_seconds = 0;
};

struct ItemOutcome {
  std::int64_t frames = 0, frames_without_face = 0;
  double wall_seconds = 0, fps = 0;  // fps: processing speed (frames / wall_seconds)
  std::string avatar_cache = "off";  // "hit", "partial", "miss" or "off" (pipeline::ItemReport::avatar_cache)
  double detect_seconds = 0;         // the detect stage's busy time (0 on a cache hit)
  double output_fps = 0;             // the output video's frame rate
  std::int64_t frames_gated = 0;     // silent frames the silence gate left as the source
};

// Callbacks of one run; all may be called from any thread.
struct RunControl {
  std::function<void(const std::string& model)> loading_model;  // a model load is needed first
  std::function<void(const ItemProgressEvent&)> progress;
  std::function<bool()> cancelled;
  std::function<void(const std::string& line)> log;  // into the job's log
};

// One run of one job: holds what the run needs (model leases) until it is destroyed.
class JobRun {
 public:
  virtual ~JobRun() = default;
  // Writes item `item`'s MP4 to `output`. Throws heygem::Error naming the cause (cancelled when
  // control.cancelled() became true); leaves no output behind on failure.
  virtual ItemOutcome run_item(std::size_t item, const std::filesystem::path& output) = 0;
  virtual std::string model_name() const = 0;
};

class JobExecutor {
 public:
  virtual ~JobExecutor() = default;
  // The devices jobs run on (one set of scheduler slots each): every replica of a generator.
  virtual std::vector<std::string> devices() const = 0;
  // The devices `job` may run on: those with a replica of every model it needs (its generator's
  // replicas when no device has all of them), in configured order.
  virtual std::vector<std::string> devices_for(const Job& job) const = 0;
  // Prepares a run on `device` (acquiring that replica's models, maybe loading them). Throws
  // heygem::Error naming the cause.
  virtual std::unique_ptr<JobRun> start(const Job& job, const Spool& spool, const RunControl& control,
                                        const std::string& device) = 0;
};

}  // namespace heygem::jobs
