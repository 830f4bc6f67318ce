#include "daemon/system/frame_allocator.hpp"

#include <malloc.h>

namespace heygem::system {

bool keep_frame_buffers_in_heap() {
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
  const bool threshold = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return threshold && trim;
}

void release_free_heap_memory() { malloc_trim(0); }

}  // namespace heygem::system
