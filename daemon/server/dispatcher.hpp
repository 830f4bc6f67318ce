#pragma once
// Request dispatch: one decoded request of one peer -> its responses. Quick requests answer on the
// socket thread; blocking ones (fetch copies outputs, logs reads a file, reload loads models) run on
// a small worker pool and answer from there, submit's input copies (regular files only, bounded by
// limits.input_copy_timeout) on a pool of their own.
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "common/peer_credentials.hpp"
#include "common/protocol.hpp"
#include "common/unique_fd.hpp"
#include "daemon/jobs/scheduler.hpp"

namespace heygem::server {

// What the daemon provides beyond the scheduler (models, reload, option checks).
class DaemonServices {
 public:
  virtual ~DaemonServices() = default;
  // The models table; a load or unload (ModelsRequest::action) first, which may block (a load).
  virtual protocol::ModelsResponse models(const protocol::ModelsRequest& request) = 0;
  // Re-reads the config and swaps models; throws heygem::Error naming the cause (nothing changed).
  virtual std::string reload() = 0;
  // Checks submit options against the pipeline and the configured models; returns them as the
  // job stores them. Throws heygem::Error(invalid_argument / not_found) naming the key.
  virtual nlohmann::json validate_options(const protocol::SubmitOptions& options) = 0;
  // What ping answers: ready, or loading (with "loading models (k/n)") while the models load.
  virtual protocol::PongResponse readiness() { return {}; }
};

// A request's way back to its connection. Thread-safe; does nothing once the connection is gone.
class Replies {
 public:
  virtual ~Replies() = default;
  virtual void send(protocol::Response response) = 0;
  // The request is complete: the connection reads the next one.
  virtual void finish() = 0;
  // Keeps `sink` alive as long as the connection (a watch's event sink).
  virtual void hold(std::shared_ptr<jobs::EventSink> sink) = 0;
};

struct DispatchLimits {
  int max_items = 64;
  std::size_t max_log_bytes = 512 * 1024;  // a logs reply carries at most this tail
};

class Dispatcher {
 public:
  Dispatcher(jobs::Scheduler& scheduler, DaemonServices& services, DispatchLimits limits);
  ~Dispatcher();  // waits for blocking work in flight

  // Handles one request (hello excepted: the connection answers it). `fds` match the request's
  // declared count. Every path ends in replies->finish(), after its responses.
  void dispatch(protocol::Request request, std::vector<UniqueFd> fds, const PeerCredentials& peer,
                std::shared_ptr<Replies> replies);

 private:
  void submit(protocol::SubmitRequest request, std::vector<UniqueFd> fds, uid_t uid, std::shared_ptr<Replies> replies);
  void fetch(protocol::FetchRequest request, std::vector<UniqueFd> fds, uid_t uid, std::shared_ptr<Replies> replies);
  void watch(const std::string& job_id, uid_t uid, jobs::WatchMode mode, const std::shared_ptr<Replies>& replies);
  protocol::LogsResponse logs(const std::string& job_id, uid_t uid);
  // Runs `work` on the pool; its result or error is sent, then finish().
  template <typename Work>
  void in_background(std::shared_ptr<Replies> replies, Work work);
  template <typename Work>
  void run_on(boost::asio::thread_pool& pool, std::shared_ptr<Replies> replies, Work work);

  jobs::Scheduler& scheduler_;
  DaemonServices& services_;
  DispatchLimits limits_;
  boost::asio::thread_pool pool_;       // logs, fetch, reload
  boost::asio::thread_pool copy_pool_;  // submit: copying inputs into the spool
};

// An ErrorResponse from the exception in flight (heygem::Error keeps its code; others: internal).
protocol::ErrorResponse error_response(std::exception_ptr error);

}  // namespace heygem::server
