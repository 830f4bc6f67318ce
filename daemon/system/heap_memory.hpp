#pragma once
// The daemon's heap between jobs. An item passes hundreds of MiB of frames and codec buffers
// through glibc's allocator from several threads; what they free stays in glibc's arenas unless it
// is handed back. heygemd hands it back when an item ends, so an idle daemon's resident memory
// returns to its baseline (the 64 clients x 4 jobs load test checks it).
// (Keeping frames warm in the heap instead was tried and taken out: docs/gpu.md.)
namespace heygem::system {

// malloc_trim(0): free pages of every arena go back to the system. Call when a unit of work ended.
void release_free_heap_memory();

}  // namespace heygem::system
