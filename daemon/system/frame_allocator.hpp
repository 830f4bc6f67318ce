#pragma once
// glibc's allocator, set up for a process that passes video frames between threads.
//
// A 720p BGR frame is 2.7 MiB. By default glibc serves such a block with mmap and gives it back
// with munmap when it is freed, so every frame the decoder fills is fresh memory that the kernel
// has to fault in and zero, page by page. Here a decoder handing fresh 720p frames to another thread
// took 2.3-3.0 s for 300 frames against 1.1 s with one reused frame; served from the heap and kept
// there once freed, the blocks are reused warm (1.0-1.1 s). On the H200 the pipeline's wall time for
// 1500 frames went from 8.0 to 7.6 s (bench/results/2026-12-01-nvidia-h200-3.md).
namespace heygem::system {

// Blocks up to 32 MiB (a 4K BGR frame is 24.9 MiB) come from the heap, and freed heap memory is
// kept (up to 1 GiB at the top) instead of being trimmed. Returns false if glibc refused a setting.
// Call once at start-up, before threads allocate.
bool keep_frame_buffers_in_heap();

// Gives the heap's free memory back to the system (malloc_trim): the frames stay warm while an
// item runs, and the daemon's resident memory returns to its baseline once it is done (64 clients
// x 4 jobs grew it by 380 MiB without this). Call when a unit of work has ended.
void release_free_heap_memory();

}  // namespace heygem::system
