#include "daemon/system/heap_memory.hpp"

#include <malloc.h>

namespace heygem::system {

void release_free_heap_memory() { malloc_trim(0); }

}  // namespace heygem::system
