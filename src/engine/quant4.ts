// bitsandbytes 4-bit weights as an engine weight kind (../shared/FORMATS.md §9): a Q4Weight is a tensor of logical
// shape [out, in] and dtype "q4" whose buffer holds the packed codes, with its block scales, code tables and double
// quantisation beside it, and kernels that multiply by it (ops/weight-gemm.ts; native/cpu/q4.cpp, native/cuda/q4.cu).
// Models, LoRA and the loss do not change: they hand the weight to the same ops.
// Is: quantisation (at load, on the host, by the CPU addon's q4_quantize: bitsandbytes' algorithm, see q4.cpp's
// header), dequantisation, the code tables, and moving a weight between host parts and a device.
// Is not: the checkpoint format (models/bnb4.ts reads and writes bitsandbytes' safetensors keys).
import { Tensor, empty, fromHost } from "./tensor.ts";
import { cpuAddon } from "./native.ts";
import { DTYPE_CODE, type DType } from "./dtype.ts";
import type { Backend } from "./backend.ts";

export type Q4Type = "nf4" | "fp4";
/** values per absmax, and absmax values per nested absmax (double quantisation) */
export const Q4_BLOCK = 64, Q4_NESTED_BLOCK = 256;

/** bitsandbytes' get_4bit_type("nf4"): quantiles of N(0, 1) (create_normal_map(offset=0.9677083)), sorted */
export const NF4_CODE = Float32Array.from([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0]);
/** get_4bit_type("fp4"): the E2M1 values of the 4-bit patterns (sign bit 8), divided by their largest, 12 (code 8 is
 *  +0: the table's "-0" is a Python integer) */
export const FP4_CODE = Float32Array.from([0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3], (x) => x / 12);

/**
 * bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for i = 0…6 the midpoints of
 * linspace(0.1, 1, 2^i + 1) times 10^(i−6), both signs, then 0 and 1, sorted: 256 values, −0.99297 … 1. In f32 as
 * torch computes them (f32 linspace, f32 mean, times the f32 of 10^(i−6)), with the linspace points rounded once:
 * torch's own last bits depend on the CPU's vector width (test/quant4.test.ts compares). Checkpoints store their map,
 * and loading uses theirs.
 */
export function dynamicMap(): Float32Array {
  const f = Math.fround, v: number[] = [0, 1];
  for (let i = 0; i < 7; i++) {
    const n = 2 ** i + 1, scale = f(10 ** (i - 6));
    const b = Array.from({ length: n }, (_, j) => f(0.1 + (0.9 * j) / (n - 1)));
    for (let j = 0; j + 1 < n; j++) {
      const mean = f(f(b[j] + b[j + 1]) / 2);
      v.push(f(scale * mean), f(-scale * mean));
    }
  }
  return Float32Array.from(v).sort();
}

/** A 4-bit weight on the host: what a checkpoint stores (bitsandbytes' QuantState). */
export interface Q4Parts {
  type: Q4Type;
  /** [out, in] */
  shape: number[];
  /** the weight's own dtype (quant_state "dtype"): dequantised values are rounded to it */
  dtype: "f32" | "bf16" | "f16";
  /** [⌈n/2⌉] codes, the even element in the high nibble */
  packed: Uint8Array;
  /** [⌈n/64⌉]: f32 scales, or with double quantisation u8 codes into nested.code */
  absmax: Float32Array | Uint8Array;
  /** [16] the codes' values (quant_map) */
  code: Float32Array;
  /** double quantisation: absmax = nested.code[q] · nested.absmax[b / 256] + nested.offset */
  nested?: { absmax: Float32Array; code: Float32Array; offset: number };
}

export interface Q4Options {
  type?: Q4Type;
  /** quantise the scales too (bnb_4bit_use_double_quant; default true) */
  doubleQuant?: boolean;
}

const numelOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * bitsandbytes' quantize_4bit (and with doubleQuant its compress_statistics) of a weight given on the host: f32
 * values, or bf16/f16 words. dtype: the weight's dtype as stored.
 */
export function quantize4(x: Float32Array | Uint16Array, dtype: "f32" | "bf16" | "f16", shape: number[], opts: Q4Options = {}): Q4Parts {
  const type = opts.type ?? "nf4", n = numelOf(shape);
  if (x.length !== n) throw new Error(`quantize4: ${x.length} values for shape [${shape}]`);
  if ((dtype === "f32") !== x instanceof Float32Array) throw new Error(`quantize4: ${dtype} values must come as ${dtype === "f32" ? "a Float32Array" : "16-bit words"}`);
  const nb = Math.ceil(n / Q4_BLOCK);
  const packed = new Uint8Array(Math.ceil(n / 2)), absmax = new Float32Array(nb);
  const k = cpuAddon();
  k.q4_quantize(packed, absmax, x, DTYPE_CODE[dtype], n, type === "fp4" ? 1 : 0);
  const code = type === "fp4" ? FP4_CODE.slice() : NF4_CODE.slice();
  if (opts.doubleQuant === false) return { type, shape: [...shape], dtype, packed, absmax, code };
  return { type, shape: [...shape], dtype, packed, code, ...quantizeAbsmax(absmax) };
}

/**
 * Double quantisation of the scales (quantize_4bit's compress_statistics): absmax − offset against the dynamic map in
 * blocks of 256. offset: the mean of absmax (default: summed in double and rounded once; torch's f32 reduction may
 * differ in the last bit, and the checkpoint stores whichever was used).
 */
export function quantizeAbsmax(absmax: Float32Array, map: Float32Array = dynamicMap(), offset?: number): { absmax: Uint8Array; nested: NonNullable<Q4Parts["nested"]> } {
  if (offset === undefined) {
    let sum = 0;
    for (const a of absmax) sum += a;
    offset = Math.fround(sum / absmax.length);
  }
  const centred = Float32Array.from(absmax, (a) => a - offset);
  const q = new Uint8Array(absmax.length), nested = new Float32Array(Math.ceil(absmax.length / Q4_NESTED_BLOCK));
  cpuAddon().q8_quantize_blockwise(q, nested, centred, absmax.length, Q4_NESTED_BLOCK, map);
  return { absmax: q, nested: { absmax: nested, code: map.slice(), offset } };
}

/** The weight's values (f32) as bitsandbytes' dequantize_4bit returns them (in the weight's dtype, widened). */
export function dequantize4(p: Q4Parts): Float32Array {
  const n = numelOf(p.shape), out = new Float32Array(n);
  cpuAddon().q4_dequantize(out, DTYPE_CODE.f32, p.packed, p.absmax, p.nested?.absmax ?? null, p.code, p.nested?.code ?? null,
    p.nested?.offset ?? 0, DTYPE_CODE[p.dtype], 0, n);
  return out;
}

/** Check a Q4Parts' sizes against its shape (errors name `what`, e.g. the tensor and file). */
export function checkQ4Parts(p: Q4Parts, what: string): void {
  const n = numelOf(p.shape), nb = Math.ceil(n / Q4_BLOCK);
  const bad = (m: string) => { throw new Error(`${what}: ${m}`); };
  if (p.shape.length !== 2) bad(`shape [${p.shape}] is not [out, in]`);
  if (p.packed.length !== Math.ceil(n / 2)) bad(`${p.packed.length} packed bytes for [${p.shape}] (expected ${Math.ceil(n / 2)})`);
  if (p.absmax.length !== nb) bad(`${p.absmax.length} absmax values for ${nb} blocks of ${Q4_BLOCK}`);
  if (p.code.length !== 16) bad(`quant_map has ${p.code.length} values (expected 16)`);
  if (p.nested) {
    if (!(p.absmax instanceof Uint8Array)) bad("double-quantised absmax must be u8 codes");
    if (p.nested.code.length !== 256) bad(`nested_quant_map has ${p.nested.code.length} values (expected 256)`);
    if (p.nested.absmax.length !== Math.ceil(nb / Q4_NESTED_BLOCK)) bad(`${p.nested.absmax.length} nested_absmax values for ${nb} blocks (expected ${Math.ceil(nb / Q4_NESTED_BLOCK)})`);
  } else if (!(p.absmax instanceof Float32Array)) bad("absmax without double quantisation must be f32");
}

/**
 * A 4-bit weight on a device: the packed codes are this tensor's buffer (dtype "q4", shape [out, in]); the scales,
 * code tables and double quantisation are tensors beside it (category "weights"), freed with it.
 */
export class Q4Weight extends Tensor {
  constructor(shape: number[], buf: unknown, backend: Backend,
    readonly type: Q4Type,
    /** the weight's own dtype (dequantised values are rounded to it) */
    readonly wdtype: "f32" | "bf16" | "f16",
    /** [nb] f32, or u8 codes with double quantisation */
    readonly absmax: Tensor,
    /** [16] */
    readonly code: Tensor,
    readonly nested: { absmax: Tensor; code: Tensor; offset: number } | null,
    /** the type CUDA's products run in (bnb_4bit_compute_dtype): bf16/f16 tensor cores, or f32 */
    readonly computeDtype: "f32" | "bf16" | "f16",
  ) {
    super(shape, "q4", buf, backend);
  }

  /** Upload host parts to a backend. */
  static fromParts(p: Q4Parts, backend: Backend, computeDtype: "f32" | "bf16" | "f16"): Q4Weight {
    checkQ4Parts(p, "Q4Weight");
    const side = (t: Tensor) => t.setCategory("weights").keep();
    const buf = backend.alloc("q4", numelOf(p.shape), false);
    backend.write(buf, p.packed);
    const absmax = side(p.absmax instanceof Uint8Array ? u8Tensor(p.absmax, backend) : fromHost(p.absmax, [p.absmax.length], "f32", backend));
    const code = side(fromHost(p.code, [16], "f32", backend));
    const nested = p.nested ? { absmax: side(fromHost(p.nested.absmax, [p.nested.absmax.length], "f32", backend)),
      code: side(fromHost(p.nested.code, [256], "f32", backend)), offset: p.nested.offset } : null;
    return new Q4Weight(p.shape, buf, backend, p.type, p.dtype, absmax, code, nested, computeDtype);
  }

  /** A weight of this shape and settings whose values are undefined: memory planning without weights (models/weights.ts ShapeOnlyWeights). */
  static allocate(shape: number[], type: Q4Type, doubleQuant: boolean, wdtype: "f32" | "bf16" | "f16", computeDtype: "f32" | "bf16" | "f16", backend: Backend): Q4Weight {
    const nb = Math.ceil(numelOf(shape) / Q4_BLOCK), side = (t: Tensor) => t.setCategory("weights").keep();
    const absmax = side(empty([nb], doubleQuant ? "u8" : "f32", backend)), code = side(empty([16], "f32", backend));
    const nested = doubleQuant ? { absmax: side(empty([Math.ceil(nb / Q4_NESTED_BLOCK)], "f32", backend)), code: side(empty([256], "f32", backend)), offset: 0 } : null;
    return new Q4Weight(shape, backend.alloc("q4", numelOf(shape), false), backend, type, wdtype, absmax, code, nested, computeDtype);
  }

  /** The seven kernel arguments of this weight (native/cpu/q4.h's Q4): packed, absmax, nested, code, ncode, offset, dtype. */
  kernelArgs(): unknown[] {
    this.check();
    return [this.buf, this.absmax.buf, this.nested?.absmax.buf ?? null, this.code.buf, this.nested?.code.buf ?? null, this.nested?.offset ?? 0,
      DTYPE_CODE[this.wdtype]];
  }

  /** The host parts (read back from the device). */
  toParts(): Q4Parts {
    const p: Q4Parts = {
      type: this.type, shape: [...this.shape], dtype: this.wdtype, packed: this.data() as Uint8Array,
      absmax: this.absmax.data() as Float32Array | Uint8Array, code: this.code.f32(),
    };
    if (this.nested) p.nested = { absmax: this.nested.absmax.f32(), code: this.nested.code.f32(), offset: this.nested.offset };
    return p;
  }

  override dispose(): void {
    if (this.isDisposed) return;
    super.dispose();
    this.absmax.dispose();
    this.code.dispose();
    this.nested?.absmax.dispose();
    this.nested?.code.dispose();
  }
}

/** A u8 tensor [n] holding these bytes. */
function u8Tensor(b: Uint8Array, backend: Backend): Tensor {
  const t = empty([b.length], "u8", backend);
  backend.write(t.buf, b);
  return t;
}

export function isQ4(W: Tensor): W is Q4Weight {
  return W instanceof Q4Weight;
}

/** The dtype a GEMM by W computes in where it takes 16-bit inputs (gemmTakes16): W's own, or a 4-bit weight's compute dtype. */
export function gemmDtypeOf(W: Tensor): DType {
  return W instanceof Q4Weight ? W.computeDtype : W.dtype;
}
