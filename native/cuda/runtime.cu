// Device runtime of the CUDA backend: device discovery (never fails at load: no GPU is a reported state),
// the single stream, a caching allocator and CUDA-graph capture. The allocator keeps freed blocks by size and
// hands them back stream-ordered (every kernel runs on one stream, so reuse after free is safe without events).
// When cudaMalloc fails it releases the cache and tries once more. Report: bytes in live blocks, their peak,
// live buffers, bytes reserved from the driver and the reserve's peak.
#include "common.cuh"
#include <map>
#include <deque>
#include <cstring>
#include <unordered_map>
#include <mutex>
#include <set>
#include <vector>

namespace aha_cuda {

namespace {
cudaStream_t g_stream = nullptr;
int g_sms = 0;
bool g_ready = false;
std::string g_error = "CUDA backend not initialised";

struct Pool {
  std::multimap<size_t, void*> free_blocks;   // size → pointer
  std::unordered_map<void*, size_t> live;      // pointer → block size
  size_t allocated = 0, peak = 0, reserved = 0, peak_reserved = 0, largest = 0;  // largest: one block, since reset_peak
  long buffers = 0;
} pool;

// A captured graph replays kernels on fixed addresses, so every block allocated while capturing belongs to the
// graph until it is destroyed: freed during the capture, a block only returns to the capture's own free list (later
// allocations of the same capture may reuse it: capture is one ordered chain); freed after it, it waits in
// `released` for graph_destroy. A block allocated before the capture and freed during it waits in `released` too.
// Either way no other tensor gets it while the graph can still write it.
struct GraphRec {
  cudaGraphExec_t exec = nullptr;
  std::unordered_map<void*, size_t> owned;      // every block the capture allocated → size
  std::multimap<size_t, void*> capture_free;    // blocks freed during the capture (reusable by it)
  std::vector<void*> released;                  // blocks freed after the capture
};
std::unordered_map<int, GraphRec> g_graphs;
GraphRec* g_capture = nullptr;  // the graph being captured
int g_next_graph = 1;

GraphRec* owner_of(void* p) {
  for (auto& kv : g_graphs) if (kv.second.owned.count(p)) return &kv.second;
  return nullptr;
}

size_t round_size(size_t n) {
  if (n < (1u << 20)) return ((n + 511) / 512) * 512;          // small: 512 B granules
  return ((n + (1u << 20) - 1) >> 20) << 20;                   // large: 1 MiB granules
}
}  // namespace

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("aha cuda: ") + what + ": " + cudaGetErrorString(e));
}

cudaStream_t stream() { return g_stream; }
int num_sms() { return g_sms; }
// programmatic dependent launch (launch_pdl in common.cuh): asked for with AHA_PDL=1 or set_pdl, used on sm_90+
bool g_pdl = env_is("AHA_PDL", "1");
int g_cc = 0;
bool pdl_enabled() { return g_pdl && g_cc >= 90; }
void set_pdl(bool on) { g_pdl = on; }

// Returns "" on success, else why the backend cannot run (no device, old driver, ...).
std::string init_device(std::string* name, size_t* total_mem, int* cc) {
  if (g_ready) { cudaDeviceProp p; cudaGetDeviceProperties(&p, 0); *name = p.name; *total_mem = p.totalGlobalMem; *cc = p.major * 10 + p.minor; return ""; }
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    g_error = std::string("no CUDA device (") + (e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0") + ")";
    return g_error;
  }
  const char* env = getenv("AHA_CUDA_DEVICE");
  int dev = env ? atoi(env) : 0;
  if ((e = cudaSetDevice(dev)) != cudaSuccess) { g_error = std::string("cudaSetDevice: ") + cudaGetErrorString(e); return g_error; }
  cudaDeviceProp p;
  cudaGetDeviceProperties(&p, dev);
  if (p.major < 8) { g_error = std::string("device ") + p.name + " is older than sm_80"; return g_error; }
  if ((e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking)) != cudaSuccess) { g_error = std::string("stream: ") + cudaGetErrorString(e); return g_error; }
  g_sms = p.multiProcessorCount;
  g_cc = p.major * 10 + p.minor;
  *name = p.name; *total_mem = p.totalGlobalMem; *cc = p.major * 10 + p.minor;
  g_ready = true;
  g_error = "";
  return "";
}
bool ready() { return g_ready; }
const std::string& last_error() { return g_error; }

static void release_cache() {
  if (g_capture) return;  // no synchronising while capturing
  CK(cudaStreamSynchronize(g_stream));
  for (auto& kv : pool.free_blocks) { cudaFree(kv.second); pool.reserved -= kv.first; }
  pool.free_blocks.clear();
}

// a block of at least n bytes (not zeroed)
void* raw_alloc(size_t n) {
  if (!g_ready) throw std::runtime_error("aha cuda: " + g_error);
  size_t sz = round_size(n ? n : 1);
  void* p = nullptr;
  if (g_capture) {
    auto c = g_capture->capture_free.lower_bound(sz);
    if (c != g_capture->capture_free.end() && c->first <= sz + sz / 8) {
      sz = c->first; p = c->second; g_capture->capture_free.erase(c);
      pool.live[p] = sz;
      pool.allocated += sz;
      pool.buffers++;
      if (pool.allocated > pool.peak) pool.peak = pool.allocated;
      if (sz > pool.largest) pool.largest = sz;
      return p;
    }
  }
  auto it = pool.free_blocks.lower_bound(sz);
  // accept a cached block at most 1/8 (or 1 MiB for small ones) larger than asked
  if (it != pool.free_blocks.end() && it->first <= sz + std::max(sz / 8, (size_t)(sz < (1u << 20) ? 0 : (1u << 20)))) {
    sz = it->first; p = it->second; pool.free_blocks.erase(it);
  } else {
    cudaError_t e = cudaMalloc(&p, sz);
    if (e != cudaSuccess && g_capture) { cudaGetLastError(); throw std::runtime_error("aha cuda: out of memory while capturing a graph"); }
    if (e != cudaSuccess) {
      cudaGetLastError();
      release_cache();
      e = cudaMalloc(&p, sz);
      if (e != cudaSuccess) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        throw std::runtime_error("aha cuda: out of memory allocating " + std::to_string(sz) + " bytes (" +
                                 std::to_string(pool.allocated) + " allocated by aha, " + std::to_string(fr) + " free of " + std::to_string(tot) + ")");
      }
    }
    pool.reserved += sz;
    if (pool.reserved > pool.peak_reserved) pool.peak_reserved = pool.reserved;
  }
  pool.live[p] = sz;
  pool.allocated += sz;
  pool.buffers++;
  if (pool.allocated > pool.peak) pool.peak = pool.allocated;
  if (sz > pool.largest) pool.largest = sz;
  if (g_capture) g_capture->owned[p] = sz;
  return p;
}

void raw_free(void* p) {
  if (!p) return;
  auto it = pool.live.find(p);
  if (it == pool.live.end()) throw std::runtime_error("aha cuda: free of a pointer the allocator does not own");
  size_t sz = it->second;
#ifdef __CUDACC_EMU__
  ::emu::poison(p, sz);  // under the CUDA emulator a freed block holds NaN bytes until written again (stream order)
#endif
  pool.allocated -= sz;
  pool.buffers--;
  pool.live.erase(it);
  if (g_capture) {
    if (g_capture->owned.count(p)) { g_capture->capture_free.emplace(sz, p); return; }  // reusable by the capture
    if (GraphRec* g = owner_of(p)) { g->released.push_back(p); return; }
    // allocated before the capture, which may have written it: the graph holds it until graph_destroy
    g_capture->owned[p] = sz;
    g_capture->released.push_back(p);
    return;
  }
  if (!g_graphs.empty())
    if (GraphRec* g = owner_of(p)) { g->released.push_back(p); return; }
  pool.free_blocks.emplace(sz, p);
}

bool capturing() { return g_capture != nullptr; }

void graph_begin() {
  if (!g_ready) throw std::runtime_error("aha cuda: " + g_error);
  if (g_capture) throw std::runtime_error("aha cuda: a graph is already being captured");
  // relaxed: the allocator may cudaMalloc while capturing (the blocks then belong to the graph)
  CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeRelaxed));
  g_capture = new GraphRec();
}

// blocks of a discarded or destroyed graph go back to the cache (after the stream has finished with them)
static void return_blocks(GraphRec& g) {
  for (auto& kv : g.capture_free) pool.free_blocks.emplace(kv.first, kv.second);
  for (void* p : g.released) pool.free_blocks.emplace(g.owned[p], p);
}

int graph_end() {
  if (!g_capture) throw std::runtime_error("aha cuda: graph_end without graph_begin");
  GraphRec* rec = g_capture;
  g_capture = nullptr;
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(g_stream, &graph);
  if (e == cudaSuccess) e = cudaGraphInstantiate(&rec->exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return_blocks(*rec);  // nothing ran: the capture's freed blocks are plain free memory (live ones stay with their tensors)
    delete rec;
    throw std::runtime_error(std::string("aha cuda: graph capture failed: ") + cudaGetErrorString(e));
  }
  int id = g_next_graph++;
  g_graphs.emplace(id, std::move(*rec));
  delete rec;
  return id;
}

void graph_abort() {
  if (!g_capture) return;
  GraphRec* rec = g_capture;
  g_capture = nullptr;
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(g_stream, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  return_blocks(*rec);
  delete rec;
}

void graph_launch(int id) {
  auto it = g_graphs.find(id);
  if (it == g_graphs.end()) throw std::runtime_error("aha cuda: no graph " + std::to_string(id));
  CK(cudaGraphLaunch(it->second.exec, g_stream));
}

void graph_destroy(int id) {
  auto it = g_graphs.find(id);
  if (it == g_graphs.end()) return;
  CK(cudaStreamSynchronize(g_stream));
  cudaGraphExecDestroy(it->second.exec);
  return_blocks(it->second);
  g_graphs.erase(it);  // blocks still held by tensors are ordinary blocks from now on
}

// Uploads go through a pinned ring buffer so they are truly asynchronous: a copy from pageable memory makes the
// driver wait for the stream, which would drain the GPU's queue at every upload (ids, masks, rope tables) and leave
// it idle while the host enqueues the next kernels. Each copy records an event; a slot is reused only after the
// copy that last used it has run. Uploads larger than a quarter of the ring take the plain (synchronising) path.
namespace {
struct Staging {
  char* base = nullptr;
  size_t cap = 0;
  bool tried = false;
  unsigned long long head = 0;                                      // monotonic byte counter
  std::deque<std::pair<unsigned long long, cudaEvent_t>> inflight;  // (monotonic start of a copy, its event), oldest first
  std::vector<cudaEvent_t> spare;
} stg;
}  // namespace

void upload(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  if (g_capture) throw std::runtime_error("aha cuda: an upload while capturing a graph (its inputs must be written before the launch)");
  if (!stg.tried) {
    stg.tried = true;
    const size_t cap = 32u << 20;
    if (cudaHostAlloc((void**)&stg.base, cap, cudaHostAllocDefault) == cudaSuccess) stg.cap = cap;
    else { cudaGetLastError(); stg.base = nullptr; }
  }
  if (!stg.cap || bytes > stg.cap / 4) { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream)); return; }
  const size_t n = (bytes + 255) & ~(size_t)255;
  unsigned long long start = stg.head;
  size_t pos = (size_t)(start % stg.cap);
  if (pos + n > stg.cap) { start += stg.cap - pos; pos = 0; }  // a copy never wraps
  // [start, start + n) overwrites what the previous lap held at [start - cap, start + n - cap): copies that began
  // before start + n - cap must be done (they complete in stream order, so waiting for the newest of them is enough)
  cudaEvent_t wait = nullptr;
  while (!stg.inflight.empty() && (stg.inflight.front().first + stg.cap < start + n || stg.inflight.size() >= 1024)) {
    if (wait) stg.spare.push_back(wait);
    wait = stg.inflight.front().second;
    stg.inflight.pop_front();
  }
  if (wait) { CK(cudaEventSynchronize(wait)); stg.spare.push_back(wait); }
  memcpy(stg.base + pos, src, bytes);
  CK(cudaMemcpyAsync(dst, stg.base + pos, bytes, cudaMemcpyHostToDevice, g_stream));
  cudaEvent_t ev;
  if (stg.spare.empty()) CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  else { ev = stg.spare.back(); stg.spare.pop_back(); }
  CK(cudaEventRecord(ev, g_stream));
  stg.inflight.emplace_back(start, ev);
  stg.head = start + n;
}
void download(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  if (g_capture) throw std::runtime_error("aha cuda: a read while capturing a graph");
  CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream));
  CK(cudaStreamSynchronize(g_stream));
}
// A read that does not wait for work enqueued after it: the copy goes, in stream order, to a pinned slot with an
// event, and download_wait blocks only until that event (a decode step reads the previous step's tokens while the
// next step runs). Slots are reused once waited for; a wait consumes its read.
namespace {
struct AsyncRead { char* host = nullptr; size_t cap = 0; cudaEvent_t ev = nullptr; bool busy = false; size_t bytes = 0; };
std::vector<AsyncRead> g_reads;
}  // namespace
int download_async(const void* src, size_t bytes) {
  if (g_capture) throw std::runtime_error("aha cuda: a read while capturing a graph");
  int id = -1;
  for (int i = 0; i < (int)g_reads.size() && id < 0; i++) if (!g_reads[i].busy && g_reads[i].cap >= bytes) id = i;
  if (id < 0) {
    for (int i = 0; i < (int)g_reads.size() && id < 0; i++) if (!g_reads[i].busy) id = i;
    if (id < 0) { g_reads.emplace_back(); id = (int)g_reads.size() - 1; }
    AsyncRead& r = g_reads[id];
    if (r.cap < bytes) {
      if (r.host) CK(cudaFreeHost(r.host));
      r.host = nullptr;
      r.cap = 0;
      const size_t cap = std::max<size_t>(4096, round_size(bytes));
      CK(cudaHostAlloc((void**)&r.host, cap, cudaHostAllocDefault));
      r.cap = cap;
    }
    if (!r.ev) CK(cudaEventCreateWithFlags(&r.ev, cudaEventDisableTiming));
  }
  AsyncRead& r = g_reads[id];
  if (bytes) CK(cudaMemcpyAsync(r.host, src, bytes, cudaMemcpyDeviceToHost, g_stream));
  CK(cudaEventRecord(r.ev, g_stream));
  r.busy = true;
  r.bytes = bytes;
  return id;
}
void download_wait(int id, void* dst, size_t bytes) {
  if (id < 0 || id >= (int)g_reads.size() || !g_reads[id].busy) throw std::runtime_error("aha cuda: no pending read " + std::to_string(id));
  AsyncRead& r = g_reads[id];
  r.busy = false;
  if (bytes != r.bytes) throw std::runtime_error("aha cuda: a pending read of " + std::to_string(r.bytes) + " bytes waited for with " + std::to_string(bytes));
  CK(cudaEventSynchronize(r.ev));
  memcpy(dst, r.host, bytes);
}
void zero(void* dst, size_t bytes) { if (bytes) CK(cudaMemsetAsync(dst, 0, bytes, g_stream)); }
// AHA_POISON=1 (the test suite): a block handed out without zeroing (an op's output, a kernel's scratch) is filled
// with all-ones bytes (NaN in f32/bf16), so a kernel that reads what it was meant to write first shows in the tests
// instead of depending on what the recycled block held
void poison(void* dst, size_t bytes) {
  static const bool on = env_is("AHA_POISON", "1");
  if (on && bytes) CK(cudaMemsetAsync(dst, 0xff, bytes, g_stream));
}
void synchronize() {
  if (g_capture) throw std::runtime_error("aha cuda: synchronize while capturing a graph");
  if (g_ready) CK(cudaStreamSynchronize(g_stream));
}

namespace {
bool g_prof = getenv("AHA_CUDA_PROFILE") != nullptr;
// shape: a GEMM's shape label (interned in g_shapes, so the pointer lives as long as the process); flops, bytes: the
// call's cost model (0: none given)
struct Ev { const char* name; cudaEvent_t a, b; const char* shape; double flops, bytes; };
std::vector<Ev> g_evs;
std::map<std::string, ProfSum> g_op_acc, g_shape_acc;
std::set<std::string> g_shapes;
void prof_flush() {
  if (g_evs.empty()) return;
  cudaStreamSynchronize(g_stream);
  for (auto& e : g_evs) {
    float ms = 0;
    cudaEventElapsedTime(&ms, e.a, e.b);
    for (ProfSum* s : {&g_op_acc[e.name], e.shape ? &g_shape_acc[e.shape] : nullptr})
      if (s) { s->ms += ms; s->calls++; s->flops += e.flops; s->bytes += e.bytes; }
    cudaEventDestroy(e.a); cudaEventDestroy(e.b);
  }
  g_evs.clear();
}
// the totals so far, cleared
std::map<std::string, ProfSum> take(std::map<std::string, ProfSum>& acc) {
  prof_flush();
  std::map<std::string, ProfSum> r;
  r.swap(acc);
  return r;
}
}  // namespace
void* prof_begin() {
  if (!g_prof || !g_ready || g_capture) return nullptr;
  cudaEvent_t a;
  cudaEventCreate(&a);
  cudaEventRecord(a, g_stream);
  return (void*)a;
}
void prof_end(const char* name, void* token, double flops, double bytes, const std::string* shape) {
  if (!token) return;
  if (g_capture) { cudaEventDestroy((cudaEvent_t)token); return; }  // began before a capture (graph_begin itself)
  cudaEvent_t b;
  cudaEventCreate(&b);
  cudaEventRecord(b, g_stream);
  g_evs.push_back({name, (cudaEvent_t)token, b, shape ? g_shapes.insert(*shape).first->c_str() : nullptr, flops, bytes});
  if (g_evs.size() >= 8192) prof_flush();
}
std::map<std::string, ProfSum> prof_ops() { return take(g_op_acc); }
std::map<std::string, ProfSum> prof_shapes() { return take(g_shape_acc); }
// turns the per-op timing on or off (AHA_CUDA_PROFILE=1 turns it on from the start): a bench can time its steps
// without the events, then profile one more
void set_profile(bool on) {
  prof_flush();
  g_prof = on;
}

void* scratch_alloc(size_t bytes) {
  void* p = raw_alloc(bytes);
  poison(p, bytes);
  return p;
}
void scratch_free(void* p) { raw_free(p); }

void memory_report(double* out /* allocated, peak, buffers, reserved, peak_reserved, largest */) {
  out[5] = (double)pool.largest;
  out[0] = (double)pool.allocated; out[1] = (double)pool.peak; out[2] = (double)pool.buffers;
  out[3] = (double)pool.reserved; out[4] = (double)pool.peak_reserved;
}
void reset_peak() { pool.peak = pool.allocated; pool.peak_reserved = pool.reserved; pool.largest = 0; }
void empty_cache() { if (g_ready) release_cache(); }

}  // namespace aha_cuda
