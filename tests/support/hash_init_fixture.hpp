#pragma once
// The hash-init spec a fixture folder was generated with: meta.seed and meta.gain_log2 of its
// manifest (shared/fixtures/README.md, rule 9). Tests never hard-code seeds or gains.
#include <cstdint>
#include <string>

#include "daemon/models/hash_init.hpp"
#include "tests/support/fixtures.hpp"

namespace heygem::test {

inline models::HashInitSpec hash_init_spec(const std::string& folder) {
  const auto meta = manifest(folder).at("meta");
  models::HashInitSpec spec;
  spec.seed = meta.at("seed").get<std::uint32_t>();
  if (meta.contains("gain_log2"))
    for (const auto& [name, gain] : meta.at("gain_log2").items()) spec.gain_log2[name] = gain.get<int>();
  return spec;
}

}  // namespace heygem::test
