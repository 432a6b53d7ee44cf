// GEMM through cuBLAS (cublasGemmStridedBatchedEx, f32 accumulation), loaded at run time with dlopen so that the
// module builds with no cuBLAS headers or libraries and loads with no GPU. The few prototypes and enum values used
// are declared here by hand (values as in cublas_api.h / library_types.h of CUDA 12-13).
// Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ, so cuBLAS gets (B, A) swapped.
// Operand dtypes: f32×f32 runs in f32 (mode 2: TF32 tensor cores). f32 activations × bf16/f16 weights convert the
// activations to the weight's 16-bit type (mode 0, default: tensor cores, what bf16 training does) or the weight
// to f32 (mode 1, exact: matches the CPU backend to f32 rounding). A call may ask for speed over exactness (`fast`:
// the LoRA GEMMs of a model with 16-bit weights): f32 × f32 then runs on TF32 tensor cores in mode 0.
#include "common.cuh"
#include <dlfcn.h>
#include <vector>
#include <unordered_map>
#include <cstdint>

namespace aha_cuda {

namespace {
typedef void* cublasHandle_t;
typedef int cublasStatus_t;
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { R_32F = 0, R_16F = 2, R_16BF = 14 };                      // cudaDataType
enum { COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77 };           // cublasComputeType_t
enum { GEMM_DEFAULT = -1 };                                      // cublasGemmAlgo_t

typedef cublasStatus_t (*create_t)(cublasHandle_t*);
typedef cublasStatus_t (*set_stream_t)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*set_workspace_t)(cublasHandle_t, void*, size_t);
typedef cublasStatus_t (*gemm_sb_t)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, long long,
                                    const void*, int, int, long long, const void*, void*, int, int, long long, int, int, int);

struct Blas {
  bool tried = false, ok = false;
  std::string why;
  cublasHandle_t h = nullptr;
  gemm_sb_t gemm_sb = nullptr;
  void* workspace = nullptr;
} blas;
int g_mode = 0;

// cuBLASLt, for single GEMMs and strided batches whose strides keep 256-byte alignment: the descriptor, the three
// layouts and the heuristic's algorithm are built once per shape and reused, so a call is one cublasLtMatmul instead
// of cublasGemmStridedBatchedEx choosing its kernel again. Measured on the H200 (bench/results/gpu-h200.md, run 8):
// decode 12-14% faster with it, train steps unchanged (batched plans are not measured yet).
// Values as in cublasLt.h (CUDA 12-13). Any failure (no Lt, no algorithm, an error status) falls back to
// cublasGemmStridedBatchedEx for that shape; AHA_CUBLASLT=0 turns the path off.
typedef void* ltHandle_t;
typedef void* ltObj_t;  // matmul descriptor, matrix layout, preference
struct ltAlgo_t { uint64_t data[8]; };
struct ltHeur_t { ltAlgo_t algo; size_t workspaceSize; int state; float wavesCount; int reserved[4]; };
enum { LT_DESC_TRANSA = 3, LT_DESC_TRANSB = 4, LT_DESC_EPILOGUE = 7, LT_DESC_BIAS_POINTER = 8, LT_DESC_BIAS_BATCH_STRIDE = 10,
       LT_PREF_MAX_WORKSPACE_BYTES = 1 };
enum { LT_EPILOGUE_BIAS = 4 };  // D = alpha op(A) op(B) + beta C + bias (one value per row of D, of D's type)
enum { LT_LAYOUT_BATCH_COUNT = 5, LT_LAYOUT_BATCH_STRIDE = 6 };  // int32 count, int64 stride in elements
typedef int (*lt_create_t)(ltHandle_t*);
typedef int (*lt_desc_create_t)(ltObj_t*, int, int);
typedef int (*lt_set_t)(ltObj_t, int, const void*, size_t);
typedef int (*lt_layout_create_t)(ltObj_t*, int, uint64_t, uint64_t, int64_t);
typedef int (*lt_pref_create_t)(ltObj_t*);
typedef int (*lt_heur_t)(ltHandle_t, ltObj_t, ltObj_t, ltObj_t, ltObj_t, ltObj_t, ltObj_t, int, ltHeur_t*, int*);
typedef int (*lt_matmul_t)(ltHandle_t, ltObj_t, const void*, const void*, ltObj_t, const void*, ltObj_t, const void*, const void*, ltObj_t,
                           void*, ltObj_t, const ltAlgo_t*, void*, size_t, cudaStream_t);
struct Lt {
  bool ok = false;
  ltHandle_t h = nullptr;
  ltObj_t pref = nullptr;
  lt_desc_create_t desc_create = nullptr;
  lt_set_t desc_set = nullptr;
  lt_layout_create_t layout_create = nullptr;
  lt_set_t layout_set = nullptr;
  lt_heur_t heur = nullptr;
  lt_matmul_t matmul = nullptr;
} lt;
// cands: the heuristic's other algorithms, kept until the plan's first call times them all (AHA_GEMM_TUNE=1)
struct LtPlan { bool ok = false; ltObj_t desc = nullptr, a = nullptr, b = nullptr, c = nullptr; ltAlgo_t algo; std::vector<ltAlgo_t> cands; };
std::unordered_map<std::string, LtPlan> lt_plans;
const size_t WORKSPACE = 32u << 20;

// Tuning (off by default; AHA_GEMM_TUNE=1 or set_gemm_tuning): a plan made outside a graph capture asks the heuristic
// for up to TUNE_ALGOS algorithms and, at its first call, times each on that call's operands into a scratch output
// (never into C, so an accumulating call still adds once), keeping the fastest. Plans made inside a capture keep the
// heuristic's first, as do outputs over TUNE_MAX_BYTES (the large training GEMMs, where the heuristic does well; the
// skinny decode and LoRA shapes are the ones it may not). A plan's algorithm never changes once it has run, so
// graphs and eager calls of one process agree; between processes the choice follows the timings.
bool g_tune = env_is("AHA_GEMM_TUNE", "1");
constexpr int TUNE_ALGOS = 8;
constexpr size_t TUNE_MAX_BYTES = 64u << 20;
long g_tuned = 0, g_tuned_changed = 0;  // plans timed, and those whose fastest was not the heuristic's first

void load_lt(void* lib) {
  if (env_is("AHA_CUBLASLT", "0")) return;
  auto create = (lt_create_t)dlsym(lib, "cublasLtCreate");
  auto pref_create = (lt_pref_create_t)dlsym(lib, "cublasLtMatmulPreferenceCreate");
  auto pref_set = (lt_set_t)dlsym(lib, "cublasLtMatmulPreferenceSetAttribute");
  lt.desc_create = (lt_desc_create_t)dlsym(lib, "cublasLtMatmulDescCreate");
  lt.desc_set = (lt_set_t)dlsym(lib, "cublasLtMatmulDescSetAttribute");
  lt.layout_create = (lt_layout_create_t)dlsym(lib, "cublasLtMatrixLayoutCreate");
  lt.layout_set = (lt_set_t)dlsym(lib, "cublasLtMatrixLayoutSetAttribute");
  lt.heur = (lt_heur_t)dlsym(lib, "cublasLtMatmulAlgoGetHeuristic");
  lt.matmul = (lt_matmul_t)dlsym(lib, "cublasLtMatmul");
  if (!create || !pref_create || !pref_set || !lt.desc_create || !lt.desc_set || !lt.layout_create || !lt.layout_set || !lt.heur || !lt.matmul) return;
  if (create(&lt.h) != 0 || pref_create(&lt.pref) != 0) return;
  uint64_t ws = blas.workspace ? WORKSPACE : 0;
  if (pref_set(lt.pref, LT_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) != 0) return;
  lt.ok = true;
}

// the cached plan for C (col-major N × M, f32) = op(B) op(A) (+ bias per row) as cuBLAS sees it; null when Lt
// cannot do it. The heuristic reads the bias pointer's alignment: callers pass only 256-byte aligned ones.
// A strided batch (batch > 1) sets each layout's batch count and stride (0: the same matrix for every batch).
LtPlan* lt_plan(int opB, int opA, long N, long M, long K, int tB, long ldb, int tA, long lda, long ldc, int compute, const float* bias,
                long batch, long strideB, long strideA, long strideC, long biasStride) {
  long key[17] = {opB, opA, N, M, K, tB, ldb, tA, lda, ldc, compute, bias != nullptr, batch, strideB, strideA, strideC, biasStride};
  std::string k((const char*)key, sizeof key);
  auto it = lt_plans.find(k);
  if (it != lt_plans.end()) return it->second.ok ? &it->second : nullptr;
  LtPlan& p = lt_plans[k];
  int ta = opB, tb = opA;
  bool ok = lt.desc_create(&p.desc, compute, R_32F) == 0 && lt.desc_set(p.desc, LT_DESC_TRANSA, &ta, sizeof ta) == 0 &&
            lt.desc_set(p.desc, LT_DESC_TRANSB, &tb, sizeof tb) == 0 &&
            lt.layout_create(&p.a, tB, opB ? K : N, opB ? N : K, ldb) == 0 &&
            lt.layout_create(&p.b, tA, opA ? M : K, opA ? K : M, lda) == 0 &&
            lt.layout_create(&p.c, R_32F, N, M, ldc) == 0;
  if (ok && batch > 1) {
    int32_t n = (int32_t)batch;
    int64_t st[3] = {strideB, strideA, strideC};
    ltObj_t ls[3] = {p.a, p.b, p.c};
    for (int i = 0; i < 3 && ok; i++)
      ok = lt.layout_set(ls[i], LT_LAYOUT_BATCH_COUNT, &n, sizeof n) == 0 && lt.layout_set(ls[i], LT_LAYOUT_BATCH_STRIDE, &st[i], sizeof st[i]) == 0;
  }
  if (ok && bias) {
    uint32_t epi = LT_EPILOGUE_BIAS;
    int64_t bs = biasStride;
    ok = lt.desc_set(p.desc, LT_DESC_EPILOGUE, &epi, sizeof epi) == 0 && lt.desc_set(p.desc, LT_DESC_BIAS_POINTER, &bias, sizeof bias) == 0 &&
         (batch == 1 || lt.desc_set(p.desc, LT_DESC_BIAS_BATCH_STRIDE, &bs, sizeof bs) == 0);
  }
  if (ok) {
    ltHeur_t r[TUNE_ALGOS];
    int n = 0;
    const bool tune = g_tune && !capturing();
    ok = lt.heur(lt.h, p.desc, p.a, p.b, p.c, p.c, lt.pref, tune ? TUNE_ALGOS : 1, r, &n) == 0 && n > 0 && r[0].state == 0;
    if (ok) p.algo = r[0].algo;
    for (int i = 0; ok && tune && i < n; i++)
      if (r[i].state == 0) p.cands.push_back(r[i].algo);
    if (p.cands.size() < 2) p.cands.clear();
  }
  p.ok = ok;  // a failed plan is remembered: that shape always takes the fallback
  return ok ? &p : nullptr;
}

void load_blas() {
  blas.tried = true;
  std::vector<std::string> names;
  if (const char* e = getenv("AHA_CUBLAS")) names.push_back(e);
  const char* dirs[] = {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/", "/usr/lib/x86_64-linux-gnu/",
                        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib/",
                        "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib/"};
  for (const char* d : dirs)
    for (const char* f : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) names.push_back(std::string(d) + f);
  void* lib = nullptr;
  for (auto& n : names) {
    // load libcublasLt from the same folder first so that the dependency resolves without LD_LIBRARY_PATH
    std::string dir = n.substr(0, n.rfind('/') + 1), ver = n.substr(n.find(".so"));
    if (!dir.empty()) dlopen((dir + "libcublasLt" + ver).c_str(), RTLD_NOW | RTLD_GLOBAL);
    if ((lib = dlopen(n.c_str(), RTLD_NOW | RTLD_GLOBAL))) break;
  }
  if (!lib) { blas.why = "libcublas.so not found (set AHA_CUBLAS to its path)"; return; }
  auto create = (create_t)dlsym(lib, "cublasCreate_v2");
  auto set_stream = (set_stream_t)dlsym(lib, "cublasSetStream_v2");
  auto set_ws = (set_workspace_t)dlsym(lib, "cublasSetWorkspace_v2");
  blas.gemm_sb = (gemm_sb_t)dlsym(lib, "cublasGemmStridedBatchedEx");
  if (!create || !set_stream || !blas.gemm_sb) { blas.why = "libcublas lacks cublasGemmStridedBatchedEx"; return; }
  if (int s = create(&blas.h)) { blas.why = "cublasCreate failed with status " + std::to_string(s); return; }
  set_stream(blas.h, stream());
  if (set_ws) {
    if (cudaMalloc(&blas.workspace, WORKSPACE) == cudaSuccess) set_ws(blas.h, blas.workspace, WORKSPACE);
    else cudaGetLastError();
  }
  load_lt(lib);
  blas.ok = true;
}

__global__ void convert_kernel(void* dst, int dtD, const void* src, int dtS, long n) {
  pdl_wait();  // (launch_pdl)
  pdl_trigger();
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n; i += (long)gridDim.x * blockDim.x) {
    float x = load_f(src, dtS, i);
    if (dtD == BF16) ((__nv_bfloat16*)dst)[i] = __float2bfloat16(x);
    else if (dtD == F16) ((__half*)dst)[i] = __float2half(x);
    else ((float*)dst)[i] = x;
  }
}

// times each of the plan's candidate algorithms on this call's operands (C = D = a scratch buffer of the output's
// extent) and keeps the fastest: one warm-up and three timed runs each; a candidate that fails is passed over
void tune_plan(LtPlan& p, const float* alpha, const void* pb, const void* pa, const float* beta, size_t outElems) {
  std::vector<ltAlgo_t> cands;
  std::swap(cands, p.cands);
  if (outElems * 4 > TUNE_MAX_BYTES) return;
  Scratch out(outElems * 4);
  float* D = out.as<float>();
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  float best = INFINITY;
  size_t pick = 0;
  for (size_t i = 0; i < cands.size(); i++) {
    const auto run = [&]() { return lt.matmul(lt.h, p.desc, alpha, pb, p.a, pa, p.b, beta, D, p.c, D, p.c, &cands[i], blas.workspace,
                                              blas.workspace ? WORKSPACE : 0, stream()) == 0; };
    if (!run()) continue;
    CK(cudaEventRecord(e0, stream()));
    bool ok = true;
    for (int r = 0; r < 3 && ok; r++) ok = run();
    CK(cudaEventRecord(e1, stream()));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (ok && ms < best) { best = ms; pick = i; }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  if (best < INFINITY) {
    p.algo = cands[pick];
    g_tuned++;
    if (pick != 0) g_tuned_changed++;
  }
}

int cuda_type(int dt) { return dt == BF16 ? R_16BF : dt == F16 ? R_16F : R_32F; }
// elements spanned by a strided batch of stored row-major matrices (rows × cols, row stride ld)
long extent(long batch, long rows, long cols, long ld, long stride) { return (batch - 1) * stride + (rows - 1) * ld + cols; }
}  // namespace

void set_gemm_mode(int mode) { g_mode = mode; }
// turns tuning on or off for plans made from now on: the cached plans are dropped (their descriptors are a few
// hundred bytes each and stay allocated; graphs captured with them keep their kernels)
void set_gemm_tuning(bool on) {
  g_tune = on;
  lt_plans.clear();
}
void gemm_tuning_report(long* tuned, long* changed) { *tuned = g_tuned; *changed = g_tuned_changed; }
int gemm_mode() { return g_mode; }

bool gemm_ready(std::string* why) {
  if (!blas.tried) load_blas();
  if (!blas.ok && why) *why = blas.why;
  return blas.ok;
}

void convert(void* dst, int dtDst, const void* src, int dtSrc, long n) {
  if (n <= 0) return;
  launch_pdl("convert", convert_kernel, dim3(blocks_for(n, 256, 8192)), dim3(256), 0, dst, dtDst, src, dtSrc, n);
}

namespace {
// a GEMM's own conversion of an operand, shown apart in AHA_CUDA_PROFILE (the binding profiles direct convert calls)
void convert_in_gemm(void* dst, int dtDst, const void* src, int dtSrc, long n) {
  struct P { void* t; double bytes; ~P() { prof_end("convert (in gemm)", t, 0, bytes); } } prof{prof_begin(), n * (double)(bytes_of(dtSrc) + bytes_of(dtDst))};
  convert(dst, dtDst, src, dtSrc, n);
}

// the product, with the bias in cuBLASLt's epilogue where it can take it; returns whether it added the bias
bool gemm_product(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA,
                  bool transB, long lda, long ldb, long ldc, long strideA, long strideB, long strideC, float alpha, float beta,
                  bool fast, const float* bias, long biasStride) {
  if (K == 0) {  // C = beta C, as the CPU does
    for (long b = 0; b < batch; b++) {
      if (beta == 0.f) CK(cudaMemset2DAsync(C + b * strideC, ldc * 4, 0, N * 4, M, stream()));
      else if (beta != 1.f) for (long m = 0; m < M; m++) scale(C + b * strideC + m * ldc, C + b * strideC + m * ldc, beta, N);
    }
    return false;
  }
  // decide operand types: both 16-bit (same type), or both f32
  Scratch sa(0), sb(0);
  const void *pa = A, *pb = B;
  int ta = dtA, tb = dtB;
  long eA = extent(strideA ? batch : 1, transA ? K : M, transA ? M : K, lda, strideA);
  long eB = extent(strideB ? batch : 1, transB ? N : K, transB ? K : N, ldb, strideB);
  if (ta != tb) {
    int target = (g_mode == 0 && ta == F32) ? tb : (g_mode == 0 && tb == F32) ? ta : F32;
    if (ta != target) { Scratch t((size_t)eA * bytes_of(target)); convert_in_gemm(t.p, target, A, ta, eA); std::swap(sa.p, t.p); pa = sa.p; ta = target; }
    if (tb != target) { Scratch t((size_t)eB * bytes_of(target)); convert_in_gemm(t.p, target, B, tb, eB); std::swap(sb.p, t.p); pb = sb.p; tb = target; }
  } else if (ta != F32 && g_mode == 1) {
    { Scratch t((size_t)eA * 4); convert_in_gemm(t.p, F32, A, ta, eA); std::swap(sa.p, t.p); pa = sa.p; ta = F32; }
    { Scratch t((size_t)eB * 4); convert_in_gemm(t.p, F32, B, tb, eB); std::swap(sb.p, t.p); pb = sb.p; tb = F32; }
  }
  // cuBLAS would run bf16 on Turing without tensor cores, many times slower: a bf16 operand there is a path that
  // should have been f16 (models load bf16 weights as f16 on such GPUs), so it is an error rather than a slow GEMM
  if (ta == BF16 && !tc_runs(BF16))
    throw std::runtime_error("aha cuda gemm: bf16 operands on " + device_caps().name + " (sm_" + std::to_string(device_caps().cc) +
                             "), which has no bf16 tensor cores: keep 16-bit weights in f16 there (the model loader does), or use the exact GEMM mode");
  int compute = (ta == F32 && (g_mode == 2 || (g_mode == 0 && fast))) ? COMPUTE_32F_FAST_TF32 : COMPUTE_32F;
  // column-major: C' (N × M, ld ldc) = op(B)' (N × K) · op(A)' (K × M)
  const auto aligned = [](const void* p) { return ((uintptr_t)p & 255) == 0; };  // what Lt's heuristic assumes by default
  // a batch's matrices must keep the alignment the heuristic assumed (every stride a multiple of 256 bytes)
  const bool strides_aligned = batch == 1 || ((strideA * bytes_of(ta)) % 256 == 0 && (strideB * bytes_of(tb)) % 256 == 0 && (strideC * 4) % 256 == 0);
  if (lt.ok && strides_aligned && aligned(pa) && aligned(pb) && aligned(C)) {
    const int opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N, opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
    // a bias in the epilogue (AHA_GEMM_EPILOGUE=0: never, the binary kernel adds it)
    static const bool epilogue = !env_is("AHA_GEMM_EPILOGUE", "0");
    const float* eb = epilogue && bias && aligned(bias) && (biasStride * 4) % 256 == 0 ? bias : nullptr;
    LtPlan* p = lt_plan(opB, opA, N, M, K, cuda_type(tb), ldb, cuda_type(ta), lda, ldc, compute, eb, batch, strideB, strideA, strideC, biasStride);
    if (!p && eb) p = lt_plan(opB, opA, N, M, K, cuda_type(tb), ldb, cuda_type(ta), lda, ldc, compute, eb = nullptr, batch, strideB, strideA, strideC, 0);
    if (p && eb && lt.desc_set(p->desc, LT_DESC_BIAS_POINTER, &eb, sizeof eb) != 0) p = nullptr;
    if (p && !p->cands.empty()) tune_plan(*p, &alpha, pb, pa, &beta, (size_t)extent(batch, M, N, ldc, strideC));
    if (p) {
      if (lt.matmul(lt.h, p->desc, &alpha, pb, p->a, pa, p->b, &beta, C, p->c, C, p->c, &p->algo, blas.workspace,
                    blas.workspace ? WORKSPACE : 0, stream()) == 0) {
        return eb != nullptr;
      }
      p->ok = false;  // this shape takes the fallback from now on
    }
  }
  int st = blas.gemm_sb(blas.h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K,
                        &alpha, pb, cuda_type(tb), (int)ldb, (long long)strideB, pa, cuda_type(ta), (int)lda, (long long)strideA,
                        &beta, C, R_32F, (int)ldc, (long long)strideC, (int)batch, compute, GEMM_DEFAULT);
  if (st != 0)
    throw std::runtime_error("aha cuda gemm: cublasGemmStridedBatchedEx status " + std::to_string(st) + " (M=" + std::to_string(M) +
                             " N=" + std::to_string(N) + " K=" + std::to_string(K) + " batch=" + std::to_string(batch) + ")");
  return false;
}
}  // namespace

void gemm(float* C, const void* A, int dtA, const void* B, int dtB, long batch, long M, long N, long K, bool transA,
          bool transB, long lda, long ldb, long ldc, long strideA, long strideB, long strideC, float alpha, float beta, bool fast,
          const float* bias, long biasStride) {
  std::string why;
  if (!gemm_ready(&why)) throw std::runtime_error("aha cuda gemm: " + why);
  if (bias && ldc != N) throw std::runtime_error("aha cuda gemm: a bias needs dense rows of C (ldc = N)");
  if (M == 0 || N == 0 || batch == 0) return;
  if (skinny_gemm(C, A, dtA, B, dtB, batch, M, N, K, transA, transB, lda, ldb, ldc, strideA, strideB, strideC, alpha, beta, bias, biasStride)) return;
  if (!gemm_product(C, A, dtA, B, dtB, batch, M, N, K, transA, transB, lda, ldb, ldc, strideA, strideB, strideC, alpha, beta, fast, bias, biasStride) && bias)
    for (long b = 0; b < batch; b++) binary(C + b * strideC, C + b * strideC, bias + b * biasStride, M * N, N, 0);  // a bias the epilogue did not take
}

}  // namespace aha_cuda
