#include <string>

#include "common/errors.hpp"
#include "daemon/config/config.hpp"
#include "tests/fuzz/fuzz_targets.hpp"

namespace heygem::fuzz {

void config_input(Bytes input) {
  const std::string text(reinterpret_cast<const char*>(input.data()), input.size());
  try {
    const config::DaemonConfig parsed = config::parse_config(text, "fuzz.yaml");
    // What the loader accepted must describe a daemon that can run.
    if (parsed.scheduler.max_concurrent_jobs < 0) throw PropertyViolation("accepted max_concurrent_jobs < 0 (0 is auto)");
    if (parsed.residency.models.empty()) throw PropertyViolation("accepted a config without models");
  } catch (const Error&) {
    // A clean rejection naming the key: what bad input should get.
  }
}

}  // namespace heygem::fuzz
