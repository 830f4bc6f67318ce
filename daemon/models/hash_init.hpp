#pragma once
// Deterministic "hash-init" weights (spec: shared/fixtures/README.md). Used by the parity tests
// and as the clearly-labelled untrained generator when no real weights are configured.
#include <cstdint>
#include <map>
#include <string>

#include "daemon/models/checkpoint.hpp"

namespace heygem::models {

struct HashInitSpec {
  std::uint32_t seed = 0;
  std::map<std::string, int> gain_log2;  // entry name -> g: value *= 2^g (exact)
};

// The spec's hash of (entry index k, flat element index i, seed): u in [0, 1).
double hash_init_uniform(std::uint64_t k, std::uint64_t i, std::uint32_t seed);

// New tensors for every entry of `layout` (names, shapes and dtypes in state_dict order; the
// values of `layout` are not read). Float entries come out float32, num_batches_tracked int64.
StateDict hash_init(const StateDict& layout, const HashInitSpec& spec);

}  // namespace heygem::models
