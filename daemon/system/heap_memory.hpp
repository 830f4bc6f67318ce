#pragma once
// The daemon's heap between jobs. An item passes hundreds of MiB of frames, codec buffers and
// tensors through glibc's allocator from several threads; what they free stays in glibc's arenas
// unless it is handed back. heygemd hands it back when an item ends, so an idle daemon's resident
// memory returns to its baseline (the hardening.Load tests check it).
//
// malloc_trim alone is not enough: it returns free chunks inside every arena, but the free top of a
// thread's arena (where a stage thread's last big buffers coalesce) only goes back when free() sees
// it above M_TRIM_THRESHOLD, and glibc's dynamic thresholds raise that to twice the largest
// buffer freed so far (59 MB after the detector's warm-up at 720p). Each stage thread's arena then
// kept up to ~58 MB resident after a job (docs/hardening.md, Load, has the measurement).
namespace heygem::system {

// Pins glibc's thresholds before any thread starts: buffers up to 32 MiB come from the arenas
// (where the dynamic threshold ends up anyway, so frames stay cheap to allocate), and an arena's
// free top above 4 MiB goes back to the system when it is freed. Returns false if glibc refused.
bool make_freed_heap_returnable();

// malloc_trim(0): free pages of every arena go back to the system. Call when a unit of work ended.
void release_free_heap_memory();

}  // namespace heygem::system
