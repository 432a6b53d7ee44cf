// Offloaded gradient checkpointing's copies (see offload.h). Each copy has a slot: a pinned host block (kept and
// reused across steps: a step offloads the same sizes again) and an event recorded after its latest transfer. A
// transfer runs on the copy stream after an event recorded on the compute stream (so it sees every write enqueued
// before it, and a block being filled was released by all earlier work); the compute stream waits for the slot's
// event before it frees the source (to host) or reads the destination (to device). So the copies overlap the layers'
// compute, and the compute stream waits only where a copy is due.
// Not captured in CUDA graphs: the pinned blocks would have to live as long as a graph (GraphedMicroBatches runs
// eagerly with offloading on CUDA).
#include "common.cuh"
#include "offload.h"
#include <vector>

namespace aha_cuda {

namespace {
struct Slot { char* host = nullptr; size_t cap = 0, bytes = 0; cudaEvent_t done = nullptr; bool busy = false; };
std::vector<Slot> g_slots;
cudaStream_t g_copy = nullptr;
cudaEvent_t g_fork = nullptr;

// the copy stream waits for everything enqueued on the compute stream so far
void fork() {
  if (capturing()) throw std::runtime_error("aha cuda: offloaded checkpointing's copies are not captured in CUDA graphs");
  if (!g_copy) {
    CK(cudaStreamCreateWithFlags(&g_copy, cudaStreamNonBlocking));
    CK(cudaEventCreateWithFlags(&g_fork, cudaEventDisableTiming));
  }
  CK(cudaEventRecord(g_fork, stream()));
  CK(cudaStreamWaitEvent(g_copy, g_fork, 0));
}

Slot& slot(int id) {
  if (id < 0 || id >= (int)g_slots.size() || !g_slots[id].busy) throw std::runtime_error("aha cuda: no offloaded copy " + std::to_string(id));
  return g_slots[id];
}
}  // namespace

int offload_to_host(const void* dev, size_t bytes) {
  fork();
  int id = -1;
  for (int i = 0; i < (int)g_slots.size() && id < 0; i++) if (!g_slots[i].busy && g_slots[i].cap >= bytes) id = i;
  for (int i = 0; i < (int)g_slots.size() && id < 0; i++) if (!g_slots[i].busy) id = i;
  if (id < 0) { g_slots.emplace_back(); id = (int)g_slots.size() - 1; }
  Slot& s = g_slots[id];
  if (s.cap < bytes) {
    if (s.host) { CK(cudaStreamSynchronize(g_copy)); CK(cudaFreeHost(s.host)); }  // (a smaller free block: grown once)
    s.host = nullptr;
    s.cap = 0;
    CK(cudaHostAlloc((void**)&s.host, bytes, cudaHostAllocDefault));
    s.cap = bytes;
  }
  if (!s.done) CK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  s.busy = true;
  s.bytes = bytes;
  CK(cudaMemcpyAsync(s.host, dev, bytes, cudaMemcpyDeviceToHost, g_copy));
  CK(cudaEventRecord(s.done, g_copy));
  return id;
}

void offload_wait(int id) { CK(cudaStreamWaitEvent(stream(), slot(id).done, 0)); }

void offload_to_device(int id, void* dev) {
  Slot& s = slot(id);
  fork();
  CK(cudaMemcpyAsync(dev, s.host, s.bytes, cudaMemcpyHostToDevice, g_copy));
  CK(cudaEventRecord(s.done, g_copy));
}

void offload_release(int id) { slot(id).busy = false; }

}  // namespace aha_cuda
