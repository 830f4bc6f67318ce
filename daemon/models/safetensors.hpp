#pragma once
// safetensors: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets},
// "__metadata__": {...}}, then the raw little-endian data the offsets point into.
#include "daemon/models/checkpoint.hpp"
#include "daemon/models/checkpoint_io.hpp"

namespace heygem::models {

// True when `source` starts like a safetensors file (a plausible header length, then '{').
bool has_safetensors_signature(const checkpoint_io::ByteSource& source);

// The tensors of a safetensors file as a dict in header order (contiguous CPU tensors). Fails,
// naming the source, on a malformed header, an unknown dtype, or data outside the file.
CheckpointDict read_safetensors(const checkpoint_io::ByteSource& source);

}  // namespace heygem::models
