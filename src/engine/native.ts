// Loads the native CPU addon (found as engine/addon.ts says: a local build, a prebuilt module, or a build from source)
// and types its exports. Every function runs synchronously; argument order follows native/cpu/kernels.h.
import { buildFromSource, findAddon, noPrebuildReason, requireAddon } from "./addon.ts";

type F32 = Float32Array;
type Any = Float32Array | Uint16Array | Int32Array | Uint8Array;
type U8 = Uint8Array;
type I32 = Int32Array;

export interface CpuAddon {
  gemm(C: F32, A: F32, B: Any, dtB: number, batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean,
    lda: number, ldb: number, ldc: number, strideA: number, strideB: number, strideC: number, alpha: number, beta: number,
    fast?: boolean, dtA?: number, bias?: F32 | null, biasStride?: number): void;
  /** dst[rows[n], :] = src[n, :] (rows of C elements), and dst2/src2 alike when given */
  scatter_rows(dst: Any, src: F32, rows: I32, N: number, C: number, dst2?: Any | null, src2?: F32 | null, dtDst?: number): void;
  /** dst row pairs[2i] = src row pairs[2i + 1] (rows of C elements of esize bytes, 4 or 2); dst2/src2 the same */
  copy_rows(dst: Any, src: Any, pairs: I32, N: number, C: number, esize: number, dst2?: Any | null, src2?: Any | null): void;
  /** a LoRA dropout mask: out[i] = scale or 0, drawn from (seed[0], salt, i) the same way on every backend */
  dropout_mask(out: F32, seed: I32, salt: number, n: number, keep: number, scale: number): void;
  /** dst[0:n] = src[0:n] in another dtype (CPU targets: f32, bf16) */
  convert(dst: Any, dtDst: number, src: Any, dtSrc: number, n: number): void;
  rms_norm_forward(y: F32, rstd: F32 | null, x: F32, w: F32 | null, N: number, C: number, eps: number, offset: number,
    y16?: Uint16Array | null, dt16?: number): void;
  rms_norm_backward(dx: F32 | null, dw: F32 | null, dy: F32, x: F32, rstd: F32, w: F32 | null, N: number, C: number, offset: number): void;
  rope_forward(y: F32, x: F32, cos: F32, sin: F32, N: number, H: number, D: number, rot: number, inverse: boolean,
    y2?: F32 | null, x2?: F32 | null, H2?: number): void;
  glu_forward(out: F32, g: F32, u: F32, n: number, act: number, out16?: Uint16Array | null, dt16?: number): void;
  glu_backward(dg: F32 | null, du: F32 | null, dout: F32, g: F32, u: F32, n: number, act: number): void;
  embedding_forward(out: F32, ids: I32, table: Any, dt: number, N: number, C: number, V: number): void;
  embedding_backward(dtable: F32, dout: F32, ids: I32, N: number, C: number): void;
  binary(out: F32, a: F32, b: F32, n: number, nb: number, op: number): void;
  scale(out: F32, a: F32, s: number, n: number): void;
  /** out = cap · tanh(x / cap) */
  softcap(out: F32, x: F32, cap: number, n: number): void;
  sum_rows(out: F32, x: F32, R: number, C: number, accumulate: boolean): void;
  copy2d(dst: F32, src: F32, rows: number, width: number, dStride: number, sStride: number, accumulate: boolean): void;
  adamw(p: F32, m: F32, v: F32, g: F32, n: number, lr: number, b1: number, b2: number, eps: number, wd: number, step: number): void;
  sum_squares(x: F32, n: number): number;
  attention_forward(o: F32, lse: F32 | null, q: F32, k: F32 | Uint16Array, v: F32 | Uint16Array, keyMask: I32 | null, B: number, T: number, S: number,
    Hq: number, Hkv: number, D: number, kvStrideB: number, scale: number, window: number, softcap: number, lowp?: boolean | number,
    o16?: Uint16Array | null, dt16?: number, dtKV?: number): void;
  attention_backward(dq: F32, dk: F32, dv: F32, dout: F32, o: F32, lse: F32, q: F32, k: F32, v: F32, keyMask: I32 | null,
    B: number, T: number, S: number, Hq: number, Hkv: number, D: number, scale: number, window: number, softcap: number, lowp?: boolean | number): void;
  lm_logp_forward(logp: F32, lse: F32, entropy: F32 | null, h: F32, W: Any, dtW: number, targets: I32, N: number, C: number,
    V: number, invTemp: number, softcap: number): void;
  lm_logp_backward(dh: F32, dW: F32 | null, dlogp: F32, lse: F32, h: F32, W: Any, dtW: number, targets: I32, N: number,
    C: number, V: number, invTemp: number, softcap: number): void;
  /** the GRPO-family loss over rows × T tokens (native/cpu/grpo_loss.cpp); `variant` is a GrpoLossParams object */
  grpo_loss(dlogp: F32 | null, logp: F32, old: F32, ref: F32, adv: F32, w: F32, entropy: F32 | null, rows: number, T: number,
    variant: object, gout: number, out?: F32 | null): number;
  /** in place on logits [B, V]: z / penalty where z > 0, else z · penalty, for the distinct tokens in each row of ids [B, L] (-1 pads) */
  repetition_penalty(logits: F32, ids: I32, B: number, V: number, L: number, penalty: number): void;
  sample_rows(tokens: I32, logprobs: F32, logits: F32, uniforms: F32, B: number, V: number, temperature: number, topK: number,
    topP: number, minP: number): void;
  // the decode path's fused kernels (native/cpu/decode.cpp, native/cuda/decode.cu; no autograd). A LoRA term is five
  // arguments: t [M, ≥ r] (row stride ldt), B [out, r] (null: none), ldt, r, scale (ops/decode.ts)
  add_rms_norm(y: F32, y16: Uint16Array | null, dt16: number, h: F32, add: F32 | null, ldAdd: number, ...rest: (F32 | number | null)[]): void;
  glu_lora(out: F32, out16: Uint16Array | null, dt16: number, g: F32, u: F32, ld: number, ...rest: (F32 | number | null)[]): void;
  qkv_rope_cache(qOut: F32, kc: Any, vc: Any, dtKV: number, rows: I32, yq: F32, ldq: number, yk: F32, yv: F32, ldkv: number,
    ...rest: (F32 | number | null)[]): void;
  qkv_attention_decode(o: F32, o16: Uint16Array | null, dt16: number, kc: Any, vc: Any, dtKV: number, rows: I32, ...rest: (F32 | I32 | number | null)[]): void;
  num_threads(): number;
  /** the GEMM mode: 0 bf16 (f32 activations by bf16 weights rounded to bf16), 1 exact (native/cpu/kernels.h) */
  set_gemm_mode(mode: number): void;
  /** the kernel set in use (native/cpu/isa.h: avx512bf16, avx512, avx2, neon, base) */
  cpu_isa(): string;
  /** every kernel set this CPU runs, widest first */
  cpu_isas(): string[];
  /** use this kernel set from now on (false: unknown, or not one this CPU runs) */
  set_cpu_isa(name: string): boolean;
  // bitsandbytes 4-bit weights (native/cpu/q4.cpp). A weight is seven arguments: packed [⌈n/2⌉] u8, absmax (f32 [nb], or
  // u8 [nb] codes with double quantisation), nested absmax f32 (or null), code [16], nested code [256] (or null),
  // offset, dtype code (the weight's own dtype: dequantised values are rounded to it)
  /** trans: C [M, R] = alpha A [M, K] Wᵀ + beta C (+ bias [R]); else C [M, K] = alpha A [M, R] W + beta C; W [R, K] */
  q4_gemm(C: F32, A: F32, dtA: number, packed: U8, absmax: F32 | U8, nested: F32 | null, code: F32, ncode: F32 | null, offset: number,
    dtW: number, M: number, R: number, K: number, trans: boolean, alpha: number, beta: number, bias: F32 | null, dtCompute: number): void;
  /** out [count] (f32 or bf16) = values [i0, i0 + count) of the weight */
  q4_dequantize(out: F32 | Uint16Array, dtOut: number, packed: U8, absmax: F32 | U8, nested: F32 | null, code: F32, ncode: F32 | null,
    offset: number, dtW: number, i0: number, count: number): void;
  /** bitsandbytes' quantize_4bit of x [n] (dtype dtX): packed [⌈n/2⌉], absmax [⌈n/64⌉]; type 0 nf4, 1 fp4 */
  q4_quantize(packed: U8, absmax: F32, x: Any, dtX: number, n: number, type: number): void;
  /** quantize_blockwise of x [n] against code [256] (sorted): q [n] codes, absmax [⌈n/block⌉] */
  q8_quantize_blockwise(q: U8, absmax: F32, x: F32, n: number, block: number, code: F32): void;
}

let addon: CpuAddon | null = null;

export function cpuAddon(): CpuAddon {
  if (addon) return addon;
  let path = findAddon("aha_cpu");
  if (!path) {
    buildFromSource(noPrebuildReason("aha_cpu"));
    path = findAddon("aha_cpu");
    if (!path) throw new Error("aha: the build from source finished without native/build/Release/aha_cpu.node");
  }
  addon = requireAddon<CpuAddon>(path);
  return addon;
}
