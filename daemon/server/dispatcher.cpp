#include "daemon/server/dispatcher.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "common/version.hpp"
#include "daemon/jobs/spool.hpp"

namespace heygem::server {
namespace {

// Forwards a job's snapshot and events to the connection; a terminal event completes the request.
class WatchSink : public jobs::EventSink {
 public:
  // The connection holds the sink (Replies::hold); Replies only points back weakly, so no cycle.
  explicit WatchSink(std::shared_ptr<Replies> replies) : replies_(std::move(replies)) {}
  void deliver(const protocol::Response& message) override {
    replies_->send(message);
    if (const auto* event = std::get_if<protocol::JobEvent>(&message); event && protocol::is_terminal(event->body))
      replies_->finish();
  }

 private:
  std::shared_ptr<Replies> replies_;
};

std::string file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO or pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "a special file";
}

void require_access(int fd, bool writable, const std::string& what) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) throw Error(ErrorCode::invalid_argument, what + ": not an open file descriptor");
  const int mode = flags & O_ACCMODE;
  const bool ok = writable ? (mode == O_WRONLY || mode == O_RDWR) : (mode == O_RDONLY || mode == O_RDWR);
  if (!ok) throw Error(ErrorCode::invalid_argument, what + ": the descriptor is not open for " +
                                                        (writable ? "writing" : "reading"));
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw Error(ErrorCode::invalid_argument, what + ": cannot stat the descriptor");
  if (writable && !S_ISREG(info.st_mode))
    throw Error(ErrorCode::invalid_argument, what + ": an output must be a regular file, not " + file_kind(info.st_mode));
  // A FIFO, socket or device may never end (or end only at max_input_bytes): refused before any
  // thread reads it.
  if (!writable && !S_ISREG(info.st_mode))
    throw Error(ErrorCode::invalid_argument,
                what + ": an input must be a regular file, not " + file_kind(info.st_mode));
}

// A listing goes out in parts of about kListingPartBytes, so that no reply's size depends on how
// many jobs exist (root's `list --all` holds every user's).
constexpr std::size_t kListingPartBytes = 512 * 1024;

void send_listing(std::vector<protocol::JobStatus> jobs, Replies& replies) {
  protocol::ListResponse part;
  std::size_t part_bytes = 0;
  for (auto& job : jobs) {
    std::size_t bytes = 0;
    try {
      bytes = protocol::to_json(job).dump().size();
    } catch (const std::exception&) {
      bytes = kListingPartBytes;  // cannot be sized: a part of its own
    }
    if (!part.jobs.empty() && part_bytes + bytes > kListingPartBytes) {
      part.more = true;
      replies.send(std::move(part));
      part = {};
      part_bytes = 0;
    }
    part_bytes += bytes;
    part.jobs.push_back(std::move(job));
  }
  replies.send(std::move(part));
}

}  // namespace

protocol::ErrorResponse error_response(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return {e.code(), e.what()};
  } catch (const std::exception& e) {
    return {ErrorCode::internal, e.what()};
  } catch (...) {
    return {ErrorCode::internal, "unknown error"};
  }
}

Dispatcher::Dispatcher(jobs::Scheduler& scheduler, DaemonServices& services, DispatchLimits limits)
    : scheduler_(scheduler), services_(services), limits_(limits), pool_(4), copy_pool_(4) {}

Dispatcher::~Dispatcher() {
  copy_pool_.join();
  pool_.join();
}

template <typename Work>
void Dispatcher::in_background(std::shared_ptr<Replies> replies, Work work) {
  run_on(pool_, std::move(replies), std::move(work));
}

template <typename Work>
void Dispatcher::run_on(boost::asio::thread_pool& pool, std::shared_ptr<Replies> replies, Work work) {
  boost::asio::post(pool, [replies = std::move(replies), work = std::move(work)]() mutable {
    try {
      replies->send(work());
    } catch (...) {
      replies->send(error_response(std::current_exception()));
    }
    replies->finish();
  });
}

void Dispatcher::dispatch(protocol::Request request, std::vector<UniqueFd> fds, const PeerCredentials& peer,
                          std::shared_ptr<Replies> replies) {
  const uid_t uid = peer.uid;
  try {
    std::visit(
        [&](auto& r) {
          using T = std::decay_t<decltype(r)>;
          if constexpr (std::is_same_v<T, protocol::HelloRequest>) {
            throw Error(ErrorCode::protocol, "hello was already exchanged");
          } else if constexpr (std::is_same_v<T, protocol::PingRequest>) {
            replies->send(services_.readiness());
            replies->finish();
          } else if constexpr (std::is_same_v<T, protocol::VersionRequest>) {
            replies->send(protocol::VersionResponse{std::string(heygem_version()), protocol::kProtocolVersion});
            replies->finish();
          } else if constexpr (std::is_same_v<T, protocol::SubmitRequest>) {
            submit(std::move(r), std::move(fds), uid, replies);
          } else if constexpr (std::is_same_v<T, protocol::StatusRequest>) {
            replies->send(scheduler_.status(r.job_id, uid));
            replies->finish();
          } else if constexpr (std::is_same_v<T, protocol::ListRequest>) {
            send_listing(scheduler_.list(uid, r.all), *replies);
            replies->finish();
          } else if constexpr (std::is_same_v<T, protocol::WatchRequest>) {
            watch(r.job_id, uid, jobs::WatchMode::stream, replies);
          } else if constexpr (std::is_same_v<T, protocol::WaitRequest>) {
            watch(r.job_id, uid, jobs::WatchMode::terminal_only, replies);
          } else if constexpr (std::is_same_v<T, protocol::CancelRequest>) {
            replies->send(scheduler_.cancel(r.job_id, uid));
            replies->finish();
          } else if constexpr (std::is_same_v<T, protocol::FetchRequest>) {
            fetch(std::move(r), std::move(fds), uid, replies);
          } else if constexpr (std::is_same_v<T, protocol::LogsRequest>) {
            scheduler_.status(r.job_id, uid);  // not_found before any work
            in_background(replies, [this, id = r.job_id, uid] { return protocol::Response{logs(id, uid)}; });
          } else if constexpr (std::is_same_v<T, protocol::ModelsRequest>) {
            if (r.action.empty()) {
              replies->send(services_.models(r));
              replies->finish();
            } else {
              if (uid != 0 && uid != ::getuid())
                throw Error(ErrorCode::permission_denied, "only root or the daemon's own user may " + r.action + " models");
              in_background(replies, [this, r] { return protocol::Response{services_.models(r)}; });
            }
          } else if constexpr (std::is_same_v<T, protocol::ReloadRequest>) {
            if (uid != 0 && uid != ::getuid())
              throw Error(ErrorCode::permission_denied, "only root or the daemon's own user may reload it");
            in_background(replies, [this] { return protocol::Response{protocol::ReloadedResponse{services_.reload()}}; });
          }
        },
        request);
  } catch (...) {
    replies->send(error_response(std::current_exception()));
    replies->finish();
  }
}

void Dispatcher::submit(protocol::SubmitRequest request, std::vector<UniqueFd> fds, uid_t uid,
                        std::shared_ptr<Replies> replies) {
  const auto items = request.item_names.size();
  if (static_cast<int>(items) > limits_.max_items)
    throw Error(ErrorCode::invalid_argument, "submit.item_names: at most " + std::to_string(limits_.max_items) +
                                                 " videos per job (limits.max_items)");
  if (fds.size() != static_cast<std::size_t>(request.expected_fds()))
    throw Error(ErrorCode::invalid_argument, "submit.fds: the frame carries " + std::to_string(fds.size()) +
                                                 " descriptors, the request needs " +
                                                 std::to_string(request.expected_fds()));
  auto options = services_.validate_options(request.options);
  jobs::SubmitRequest job;
  job.owner = uid;
  job.options = std::move(options);
  require_access(fds[0].get(), false, "audio " + request.audio_name);
  job.audio = {request.audio_name, std::move(fds[0])};
  for (std::size_t i = 0; i < items; ++i) {
    require_access(fds[1 + i].get(), false, "video " + request.item_names[i]);
    job.videos.push_back({request.item_names[i], std::move(fds[1 + i])});
  }
  const bool with_outputs = !request.output_names.empty();
  for (std::size_t i = 0; i < items; ++i) {
    if (with_outputs) {
      auto& fd = fds[1 + items + i];
      require_access(fd.get(), true, "output " + request.output_names[i]);
      job.outputs.push_back(std::move(fd));
      job.output_names.push_back(request.output_names[i]);
    } else {
      job.outputs.emplace_back();
      job.output_names.emplace_back();
    }
  }
  // Copying inputs has its own threads, so that logs, fetch and reload never wait behind a copy.
  run_on(copy_pool_, std::move(replies), [this, job = std::make_shared<jobs::SubmitRequest>(std::move(job))]() mutable {
    const auto created = scheduler_.submit(std::move(*job));
    return protocol::Response{protocol::SubmittedResponse{created.id, static_cast<int>(created.items.size())}};
  });
}

void Dispatcher::fetch(protocol::FetchRequest request, std::vector<UniqueFd> fds, uid_t uid,
                       std::shared_ptr<Replies> replies) {
  if (fds.size() != request.items.size())
    throw Error(ErrorCode::invalid_argument, "fetch.fds: the frame carries " + std::to_string(fds.size()) +
                                                 " descriptors for " + std::to_string(request.items.size()) + " item(s)");
  for (std::size_t i = 0; i < fds.size(); ++i)
    require_access(fds[i].get(), true, "fetch target for item " + std::to_string(request.items[i]));
  scheduler_.status(request.job_id, uid);  // not_found before any work
  auto targets = std::make_shared<std::vector<UniqueFd>>(std::move(fds));
  in_background(std::move(replies), [this, request = std::move(request), targets, uid] {
    protocol::FetchedResponse fetched{request.job_id, {}};
    for (std::size_t i = 0; i < request.items.size(); ++i) {
      const auto item = request.items[i];
      if (item < 0) throw Error(ErrorCode::invalid_argument, "fetch.items: negative item index");
      const auto source = scheduler_.open_output(request.job_id, uid, static_cast<std::size_t>(item));
      const auto bytes =
          jobs::copy_contents(source.get(), (*targets)[i].get(), "fetch target for item " + std::to_string(item));
      fetched.items.push_back({item, bytes});
    }
    return protocol::Response{fetched};
  });
}

void Dispatcher::watch(const std::string& job_id, uid_t uid, jobs::WatchMode mode,
                       const std::shared_ptr<Replies>& replies) {
  auto sink = std::make_shared<WatchSink>(replies);
  // A finished job gets its terminal event at once (and the sink finishes the request).
  if (scheduler_.watch(job_id, uid, sink, mode)) replies->hold(std::move(sink));
}

protocol::LogsResponse Dispatcher::logs(const std::string& job_id, uid_t uid) {
  protocol::LogsResponse response{job_id, scheduler_.read_log(job_id, uid), false};
  if (response.text.size() > limits_.max_log_bytes) {
    auto cut = response.text.size() - limits_.max_log_bytes;
    while (cut < response.text.size() && response.text[cut - 1] != '\n') ++cut;  // start at a whole line
    response.text.erase(0, cut);
    response.truncated = true;
  }
  // Log lines quote client display names: keep the frame encodable whatever bytes they hold.
  try {
    (void)nlohmann::json(response.text).dump();
  } catch (const nlohmann::json::exception&) {
    for (auto& c : response.text)
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
  }
  return response;
}

}  // namespace heygem::server
