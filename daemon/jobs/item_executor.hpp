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
  // How many items the daemon runs at once at most (its slots over all devices): each item sizes its
  // CPU threads to its share of the machine (pipeline/thread_plan.hpp). Set before jobs start.
  void set_items_at_once(int items);
  // Checks that the models the options name exist with the right role (the options themselves were
  // validated when parsed). Throws heygem::Error(invalid_argument) naming the model.
  void validate(const protocol::SubmitOptions& options) const;

 private:
  const residency::ModelSpec* find(const std::string& name) const;  // under mutex_
  // The gfpgan model --enhance uses: models.default_restorer, else the only gfpgan entry. Under mutex_.
  const residency::ModelSpec* restorer_spec() const;

  residency::ModelRegistry& registry_;
  mutable std::mutex mutex_;
  residency::ResidencyConfig config_;
  std::shared_ptr<const pipeline::AvatarCache> avatar_cache_;
  int items_at_once_ = 1;
};

}  // namespace heygem::jobs
