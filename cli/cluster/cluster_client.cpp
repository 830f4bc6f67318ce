#include "cli/cluster/cluster_client.hpp"

#include <thread>

#include "cli/lib/cli_error.hpp"
#include "common/errors.hpp"

namespace heygem::cli {
namespace {

using namespace std::chrono_literals;
constexpr auto kReconnectFor = 60s;  // a Redis restart (with appendonly) takes seconds
constexpr int kEventsMaxlen = 1000;
constexpr long long kFinishedTtlSeconds = 7LL * 24 * 3600;

cluster::RedisAddress address_of(const ClusterTarget& target) {
  try {
    return cluster::parse_redis_address(target.address);
  } catch (const Error& e) {
    throw CliError(ExitCode::usage, std::string("--cluster: ") + e.what());
  }
}

cluster::RedisCredentials credentials_of(const ClusterTarget& target, const cluster::RedisAddress& address) {
  cluster::RedisCredentials credentials;
  credentials.user = address.user;
  if (!target.password_file.empty()) {
    try {
      credentials.password = cluster::read_password_file(target.password_file);
    } catch (const Error& e) {
      throw CliError(ExitCode::local_file, e.what());
    }
  }
  return credentials;
}

std::string now_ms() {
  return std::to_string(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// A finished job whose events expired: its terminal event from the hash.
protocol::JobEvent terminal_from(const protocol::JobStatus& status) {
  switch (status.state) {
    case protocol::JobState::done: {
      protocol::DoneEvent done;
      for (const auto& item : status.items) {
        done.outputs.push_back(protocol::OutputPlace::fd);
        done.frames += item.frames_done;
        done.frames_without_face += item.frames_without_face;
        done.wall_s += item.wall_s;
      }
      return {status.job_id, done};
    }
    case protocol::JobState::cancelled: return {status.job_id, protocol::CancelledEvent{}};
    default: return {status.job_id, protocol::FailedEvent{status.error.empty() ? "failed" : status.error}};
  }
}

}  // namespace

ClusterClient::ClusterClient(const ClusterTarget& target)
    : target_(target), redis_(address_of(target), credentials_of(target, address_of(target))) {
  ping();
}

cluster::RedisValue ClusterClient::command(const std::vector<std::string>& args,
                                           std::optional<std::chrono::milliseconds> timeout) {
  const auto give_up = std::chrono::steady_clock::now() + kReconnectFor;
  for (;;) {
    try {
      return redis_.command(args, timeout);
    } catch (const cluster::RedisUnavailable& e) {
      if (std::chrono::steady_clock::now() >= give_up)
        throw CliError(ExitCode::unreachable, std::string(e.what()) + " (--cluster, HEYGEM_CLUSTER)");
      std::this_thread::sleep_for(250ms);
    } catch (const cluster::RedisCommandError& e) {
      const std::string what = e.what();
      if (what.find("NOAUTH") != std::string::npos || what.find("WRONGPASS") != std::string::npos ||
          what.find("refused the credentials") != std::string::npos)
        throw CliError(ExitCode::not_found, "Redis at " + redis_.address().text() + ": " + what +
                                                " (user in the URL, password in $HEYGEM_REDIS_PASSWORD_FILE)");
      if (what.find("LOADING") != std::string::npos && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(250ms);  // Redis replays its append-only file after a restart
        continue;
      }
      throw Error(ErrorCode::internal, "Redis: " + what);
    }
  }
}

void ClusterClient::ping() {
  // The first contact fails fast: a wrong address should not hang for a minute.
  try {
    redis_.command({"PING"});
  } catch (const cluster::RedisUnavailable& e) {
    throw CliError(ExitCode::unreachable, std::string(e.what()) + " (--cluster, HEYGEM_CLUSTER)");
  } catch (const cluster::RedisCommandError&) {
    command({"PING"});
  }
}

std::string ClusterClient::submit(const cluster::ClusterJobSpec& spec, const std::vector<std::string>& inline_data,
                                  std::chrono::seconds inline_ttl) {
  for (std::size_t i = 0; i < inline_data.size(); ++i)
    if (!inline_data[i].empty())
      command({"SET", target_.names.input_key(spec.job_id, i), inline_data[i], "EX", std::to_string(inline_ttl.count())},
              60s);
  const auto& n = target_.names;
  return command({"EVAL", cluster::kSubmitScript, "4", n.job_key(spec.job_id), n.stream, n.index_key(),
                  n.events_key(spec.job_id), spec.job_id, cluster::to_json(spec).dump(), now_ms(),
                  cluster::encode_event(spec.job_id, protocol::QueuedEvent{1}), std::to_string(kEventsMaxlen)})
      .str();
}

cluster::Fields ClusterClient::hash(const std::string& job_id) {
  auto fields = cluster::field_pairs(command({"HGETALL", target_.names.job_key(job_id)}));
  if (fields.empty()) throw Error(ErrorCode::not_found, "no cluster job " + job_id + " (or it expired)");
  return fields;
}

protocol::JobStatus ClusterClient::status(const std::string& job_id) {
  return cluster::job_status_from_hash(job_id, hash(job_id));
}

cluster::ClusterJobSpec ClusterClient::spec(const std::string& job_id) {
  return cluster::parse_job_spec(cluster::field(hash(job_id), "spec"));
}

std::vector<protocol::JobStatus> ClusterClient::list(bool all) {
  std::vector<protocol::JobStatus> jobs;
  const auto ids = command({"ZRANGE", target_.names.index_key(), "0", "-1"});
  for (const auto& id : ids.elements) {
    const auto fields = cluster::field_pairs(command({"HGETALL", target_.names.job_key(id.str())}));
    if (fields.empty()) {  // expired with its retention
      command({"ZREM", target_.names.index_key(), id.str()});
      continue;
    }
    auto status = cluster::job_status_from_hash(id.str(), fields);
    if (all || !protocol::is_finished(status.state)) jobs.push_back(std::move(status));
  }
  return jobs;
}

protocol::JobEvent ClusterClient::follow(const std::string& job_id, render::ProgressView* view) {
  const auto first = status(job_id);
  if (view) view->snapshot(first);
  std::string last = "0-0";
  const auto events = target_.names.events_key(job_id);
  for (;;) {
    const auto reply = command({"XREAD", "COUNT", "100", "BLOCK", "1000", "STREAMS", events, last}, 6s);
    bool any = false;
    if (!reply.is_nil()) {
      for (const auto& stream : reply.elements) {
        if (stream.elements.size() < 2) continue;
        for (const auto& entry : stream.elements[1].elements) {
          if (entry.elements.size() < 2) continue;
          last = entry.elements[0].str();
          any = true;
          const auto text = cluster::field(cluster::field_pairs(entry.elements[1]), "event");
          protocol::Response message;
          try {
            message = protocol::parse_response(text);
          } catch (const Error&) {
            continue;  // not an event this version reads
          }
          auto* event = std::get_if<protocol::JobEvent>(&message);
          if (!event) continue;
          if (view) view->event(*event);
          if (protocol::is_terminal(event->body)) return *event;
        }
      }
    }
    if (!any) {
      // Nothing new: a job whose events are gone (trimmed, expired) still ends by its hash.
      const auto now = status(job_id);
      if (protocol::is_finished(now.state) && command({"EXISTS", events}).as_integer() == 0) {
        auto terminal = terminal_from(now);
        if (view) view->event(terminal);
        return terminal;
      }
    }
  }
}

protocol::JobStatus ClusterClient::cancel(const std::string& job_id) {
  const auto& n = target_.names;
  const auto verdict = command({"EVAL", cluster::kCancelScript, "2", n.job_key(job_id), n.events_key(job_id), now_ms(),
                                cluster::encode_event(job_id, protocol::CancelledEvent{}),
                                std::to_string(kEventsMaxlen), std::to_string(kFinishedTtlSeconds)})
                           .str();
  if (verdict == "missing") throw Error(ErrorCode::not_found, "no cluster job " + job_id + " (or it expired)");
  if (verdict == "done" || verdict == "failed" || (verdict == "cancelled" && status(job_id).state != protocol::JobState::cancelled))
    throw Error(ErrorCode::invalid_argument, "job " + job_id + " has already finished (" + verdict + ")");
  return status(job_id);
}

nlohmann::json ClusterClient::summary() {
  const auto& n = target_.names;
  nlohmann::json out{{"type", "cluster"}, {"stream", n.stream}, {"group", n.group}, {"dead_letter_stream", n.dead_letter}};
  out["entries"] = command({"XLEN", n.stream}).as_integer();
  out["dead_letters"] = command({"XLEN", n.dead_letter}).as_integer();
  out["lag"] = out["entries"];  // no group yet: every entry waits
  out["pending"] = 0;
  try {
    for (const auto& group : command({"XINFO", "GROUPS", n.stream}).elements) {
      const auto fields = cluster::field_pairs(group);
      if (cluster::field(fields, "name") != n.group) continue;
      out["pending"] = std::stoll(cluster::field(fields, "pending"));
      const auto lag = cluster::field(fields, "lag");
      out["lag"] = lag.empty() ? nlohmann::json(nullptr) : nlohmann::json(std::stoll(lag));
      out["consumers"] = std::stoll(cluster::field(fields, "consumers"));
    }
  } catch (const Error&) {  // no stream yet: nothing queued
  }
  const auto workers_list = workers();
  out["workers"] = workers_list;
  std::size_t serving = 0;
  for (const auto& worker : workers_list) serving += worker.value("state", std::string()) == "serving";
  out["workers_serving"] = serving;
  return out;
}

nlohmann::json ClusterClient::workers() {
  const auto& n = target_.names;
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& [name, beat] : cluster::field_pairs(command({"HGETALL", n.workers_key()}))) {
    try {
      by_name[name] = nlohmann::json::parse(beat);
    } catch (const std::exception&) {
      by_name[name] = nlohmann::json{{"consumer", name}};
    }
  }
  try {
    for (const auto& consumer : command({"XINFO", "CONSUMERS", n.stream, n.group}).elements) {
      const auto fields = cluster::field_pairs(consumer);
      auto& row = by_name[cluster::field(fields, "name")];
      row["consumer"] = cluster::field(fields, "name");
      row["pending"] = std::stoll(cluster::field(fields, "pending"));
      row["idle_ms"] = std::stoll(cluster::field(fields, "idle"));
    }
  } catch (const Error&) {  // no group yet
  }
  const auto now = std::stoll(now_ms());
  nlohmann::json rows = nlohmann::json::array();
  for (auto& [name, row] : by_name) {
    if (!row.contains("pending")) row["pending"] = 0;
    if (!row.contains("running")) row["running"] = nlohmann::json::array();
    // A worker that stopped beating (killed, its box gone) is shown as gone.
    const auto seen = row.value("seen_ms", static_cast<long long>(0));
    if (!row.contains("state") || (row["state"] != "stopped" && now - seen > 10'000)) row["state"] = "gone";
    rows.push_back(row);
  }
  return rows;
}

}  // namespace heygem::cli
