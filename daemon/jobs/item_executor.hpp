#pragma once
// The real executor: a job's run holds leases on its generator and detector from the
// ModelRegistry (loading them if needed, shown as "loading_model"), marks its device busy (no
// heartbeats meanwhile), and runs each item through pipeline::run_lip_sync from the spool.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "daemon/jobs/executor.hpp"
#include "common/protocol.hpp"
#include "daemon/residency/model_registry.hpp"

namespace heygem::pipeline {
class AvatarCache;
}

namespace heygem::jobs {

class ItemExecutor : public JobExecutor {
 public:
  ItemExecutor(residency::ModelRegistry& registry, residency::ResidencyConfig config);

  std::vector<std::string> devices() const override;
  std::vector<std::string> devices_for(const Job& job) const override;
  std::unique_ptr<JobRun> start(const Job& job, const Spool& spool, const RunControl& control,
                                const std::string& device) override;

  // After a successful reload: names and devices of new jobs follow the new config.
  void update_config(residency::ResidencyConfig config);
  // Items look their videos' faces up here (null = no avatar cache). Set before jobs start.
  void set_avatar_cache(std::shared_ptr<const pipeline::AvatarCache> cache);
  // Checks that the models the options name exist with the right role (the options themselves were
  // validated when parsed). Throws heygem::Error(invalid_argument) naming the model.
  void validate(const protocol::SubmitOptions& options) const;

 private:
  const residency::ModelSpec* find(const std::string& name) const;  // under mutex_

  residency::ModelRegistry& registry_;
  mutable std::mutex mutex_;
  residency::ResidencyConfig config_;
  std::shared_ptr<const pipeline::AvatarCache> avatar_cache_;
};

}  // namespace heygem::jobs
