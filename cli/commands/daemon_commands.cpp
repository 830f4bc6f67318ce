// Commands about the daemon itself: models, ping, version, reload.
#include <chrono>
#include <ostream>

#include "cli/commands/commands.hpp"
#include "cli/lib/cli_error.hpp"
#include "cli/render/format.hpp"
#include "cli/render/tables.hpp"
#include "common/version.hpp"

namespace heygem::cli {

int run_models(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const protocol::ModelsRequest request{invocation.model_action, invocation.model_name};
  const auto models = expect<protocol::ModelsResponse>(client.call(request), "models");
  if (invocation.global.json) {
    print_json(io.out, models);
  } else if (!invocation.global.quiet) {
    if (!models.message.empty()) io.out << models.message << '\n';
    io.out << render::model_table(models);
  }
  return to_int(ExitCode::ok);
}

int run_ping(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto start = std::chrono::steady_clock::now();
  const auto pong = expect<protocol::PongResponse>(client.call(protocol::PingRequest{}), "ping");
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (invocation.global.json) print_json(io.out, pong);
  else if (!invocation.global.quiet && pong.state == "ready")
    io.out << "pong from heygemd " << render::printable(client.daemon_version()) << " at " << client.socket_path().string() << " in "
           << render::format_fixed(ms, 2) << " ms\n";
  else if (!invocation.global.quiet)
    io.out << "pong from heygemd " << client.daemon_version() << " at " << client.socket_path().string() << " in "
           << render::format_fixed(ms, 2) << " ms: " << render::printable(pong.detail)
           << (pong.state == "loading" ? "; jobs submitted now wait for the models\n" : "\n");
  return to_int(ExitCode::ok);
}

int run_version(const Invocation& invocation, Io& io) {
  const bool human = !invocation.global.json && !invocation.global.quiet;
  if (human) io.out << "heygemctl " << heygem_version() << " (protocol " << protocol::kProtocolVersion << ")\n";
  Client client = connect_client(invocation, io);
  const auto version = expect<protocol::VersionResponse>(client.call(protocol::VersionRequest{}), "version");
  if (invocation.global.json) print_json(io.out, version);
  else if (human)
    io.out << "heygemd " << render::printable(version.daemon_version) << " (protocol " << version.protocol << ") at "
           << client.socket_path().string() << '\n';
  return to_int(ExitCode::ok);
}

int run_reload(const Invocation& invocation, Io& io) {
  Client client = connect_client(invocation, io);
  const auto reloaded = expect<protocol::ReloadedResponse>(client.call(protocol::ReloadRequest{}), "reload");
  if (invocation.global.json) print_json(io.out, reloaded);
  else if (!invocation.global.quiet) io.out << (reloaded.message.empty() ? "reloaded" : render::printable(reloaded.message)) << '\n';
  return to_int(ExitCode::ok);
}

}  // namespace heygem::cli
