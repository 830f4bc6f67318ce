#include "daemon/system/heap_memory.hpp"

#include <malloc.h>

namespace heygem::system {

bool make_freed_heap_returnable() {
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2).
  // Setting either value also switches off glibc's dynamic adjustment of both.
  const bool threshold = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool trim = mallopt(M_TRIM_THRESHOLD, 4 << 20) == 1;
  return threshold && trim;
}

void release_free_heap_memory() { malloc_trim(0); }

}  // namespace heygem::system
