// Offloaded gradient checkpointing's copies (offload.cu; src/engine/offload.ts decides what and when): a buffer to
// pinned host memory and back, on a copy stream of their own, ordered against the compute stream by events.
#pragma once
#include <cstddef>

namespace aha_cuda {

// start copying `bytes` of dev to pinned host memory after the work enqueued so far; returns the copy's id
int offload_to_host(const void* dev, size_t bytes);
// later work on the compute stream waits for the copy's latest transfer (then its source may be freed, or its
// destination read)
void offload_wait(int id);
// start copying copy id's host data into dev (a buffer of its size) after the work enqueued so far
void offload_to_device(int id, void* dev);
// copy id's host memory may be reused (by copies enqueued later on the copy stream)
void offload_release(int id);

}  // namespace aha_cuda
