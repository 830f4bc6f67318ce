#pragma once
// A strict unpickler for the subset of pickle that torch.save writes for state dicts (protocol 2,
// plus the few protocol 4 opcodes that only change framing). It builds data, never runs code:
// GLOBAL may only name collections.OrderedDict, the torch._utils tensor rebuild functions and the
// torch.*Storage classes; anything else is an error naming the opcode or the global.
#include <ATen/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>

#include "daemon/models/checkpoint.hpp"
#include "daemon/models/checkpoint_io.hpp"

namespace heygem::models::pickle {

// A persistent id as torch writes it for a storage:
// ("storage", torch.<Type>Storage, key, location, numel[, view_metadata]).
struct StorageId {
  struct View {  // legacy storage views (torch < 0.4): elements [offset, offset + numel) of `key`
    std::string key;
    std::int64_t offset = 0;
    std::int64_t numel = 0;
  };
  at::ScalarType dtype = at::ScalarType::Float;
  std::string key;
  std::string location;  // "cpu", "cuda:0", ...; everything is loaded to the CPU
  std::int64_t numel = 0;
  std::optional<View> view;
};

// A range of a storage that tensors are rebuilt on.
struct StorageSlice {
  at::Tensor flat;  // 1-D, owns the storage; its dtype is the storage's
  std::int64_t offset = 0;
  std::int64_t numel = 0;
};

// Turns persistent ids into storages; the container format (legacy or zip) decides where the
// bytes come from. Must return the same storage for the same key (tensors share storages).
class StorageResolver {
 public:
  virtual ~StorageResolver() = default;
  virtual StorageSlice resolve(const StorageId& id) = 0;
};

// Reads one pickle from `in` (up to and including its STOP opcode). `storages` may be null for
// pickles that must not reference storages. Errors name in.source() and the offending opcode.
CheckpointObject read_pickle(checkpoint_io::ByteCursor& in, StorageResolver* storages);

// Bytes per element of the storage dtypes the readers accept.
std::int64_t element_size(at::ScalarType dtype);

// A tensor over `slice`: sizes/strides/offset relative to the slice; fails (naming `source`)
// when the view reaches outside the slice.
at::Tensor make_tensor_view(const StorageSlice& slice, std::int64_t offset,
                            const std::vector<std::int64_t>& sizes,
                            const std::vector<std::int64_t>& strides, std::string_view source);

// A fresh 1-D storage tensor of `numel` elements (uninitialised; the caller fills all of it).
at::Tensor allocate_storage(at::ScalarType dtype, std::int64_t numel);

}  // namespace heygem::models::pickle
