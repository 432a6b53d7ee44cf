// bitsandbytes 4-bit checkpoints (../shared/FORMATS.md §9.4): how a Hugging Face folder saved in 4-bit stores a
// Linear's weight (U8 packed codes, its absmax, quant_map, double quantisation's nested_absmax / nested_quant_map, and
// a U8 tensor of JSON for the rest), the config.json `quantization_config`, and the settings of quantise-at-load.
// Is: reading stored 4-bit weights as they are (their maps used, never regenerated), writing them, and the linear
// loader that quantises 16-bit weights when asked. Is not: the algorithm (engine/quant4.ts) or the kernels.
import type { SafetensorsFile, StWriteTensor } from "./safetensors.ts";
import { Q4Weight, quantize4, Q4_BLOCK, Q4_NESTED_BLOCK, type Q4Parts, type Q4Type } from "../engine/quant4.ts";
import { defaultBackend, type Tensor } from "../engine/index.ts";
import { ShapeOnlyWeights, type WeightStore } from "./weights.ts";

/** 4-bit base weights: bitsandbytes' BitsAndBytesConfig fields that aha reads (load_in_4bit implied). */
export interface Quant4Settings {
  /** bnb_4bit_quant_type (default nf4) */
  type: Q4Type;
  /** bnb_4bit_use_double_quant: the scales quantised too, 0.127 fewer bits per weight (default true) */
  doubleQuant: boolean;
  /** bnb_4bit_compute_dtype: the type CUDA's 4-bit products run in (default bf16; the CPU computes in f32) */
  computeDtype: "f32" | "bf16" | "f16";
}

const TORCH_NAME = { f32: "float32", bf16: "bfloat16", f16: "float16" } as const;
/** "bfloat16" / "torch.bfloat16" / "bf16" … → the engine's dtype, or undefined */
export function dtypeFromTorch(s: unknown): "f32" | "bf16" | "f16" | undefined {
  const v = String(s ?? "").replace(/^torch\./, "");
  return ({ float32: "f32", fp32: "f32", f32: "f32", bfloat16: "bf16", bf16: "bf16", float16: "f16", fp16: "f16", f16: "f16", half: "f16" } as const)[v as "f32"];
}

/** The settings of a folder saved in bitsandbytes 4-bit (config.json's quantization_config), or null. */
export function storedQuant4(raw: Record<string, unknown>, path: string): Quant4Settings | null {
  const q = raw.quantization_config as Record<string, unknown> | undefined;
  if (!q || typeof q !== "object") return null;
  if (q.quant_method !== "bitsandbytes") throw new Error(`${path}: quantization_config.quant_method '${String(q.quant_method)}' is not supported (bitsandbytes 4-bit only)`);
  if (q.load_in_8bit === true || q._load_in_8bit === true) throw new Error(`${path}: quantization_config is bitsandbytes 8-bit, which aha does not read (4-bit only)`);
  if (q.load_in_4bit !== true && q._load_in_4bit !== true) return null;
  const type = String(q.bnb_4bit_quant_type ?? "fp4"); // (transformers' default)
  if (type !== "nf4" && type !== "fp4") throw new Error(`${path}: quantization_config.bnb_4bit_quant_type '${type}' is not nf4 or fp4`);
  return { type, doubleQuant: q.bnb_4bit_use_double_quant === true, computeDtype: dtypeFromTorch(q.bnb_4bit_compute_dtype) ?? "f32" };
}

/** config.json's quantization_config for a folder saved with these settings (what transformers writes). */
export function quantizationConfig(s: Quant4Settings): Record<string, unknown> {
  return {
    _load_in_4bit: true, _load_in_8bit: false, bnb_4bit_compute_dtype: TORCH_NAME[s.computeDtype], bnb_4bit_quant_storage: "uint8",
    bnb_4bit_quant_type: s.type, bnb_4bit_use_double_quant: s.doubleQuant, llm_int8_enable_fp32_cpu_offload: false,
    llm_int8_has_fp16_weight: false, llm_int8_skip_modules: null, llm_int8_threshold: 6.0, load_in_4bit: true, load_in_8bit: false,
    quant_method: "bitsandbytes",
  };
}

const u8 = (b: Uint8Array) => new Uint8Array(b); // (a copy: the file's buffer may not be aligned or kept)

/**
 * The stored 4-bit weight `<module>.weight` of a file, or null when it is not stored in 4-bit. Every tensor is checked
 * against the quant state and the shape the model expects, with errors naming the tensor and the file.
 */
export function readStoredQ4(f: SafetensorsFile, weight: string, expect: number[]): Q4Parts | null {
  const stateKey = [`${weight}.quant_state.bitsandbytes__nf4`, `${weight}.quant_state.bitsandbytes__fp4`].find((k) => f.has(k));
  if (!stateKey) return null;
  const where = `${f.path}: tensor '${weight}'`;
  let st: Record<string, unknown>;
  try {
    st = JSON.parse(new TextDecoder().decode(f.bytes(stateKey)));
  } catch (e) {
    throw new Error(`${f.path}: tensor '${stateKey}' is not JSON (${(e as Error).message})`);
  }
  const need = (k: string) => { if (!f.has(`${weight}.${k}`)) throw new Error(`${where}: '${weight}.${k}' is missing`); return `${weight}.${k}`; };
  const type = String(st.quant_type);
  if (type !== "nf4" && type !== "fp4") throw new Error(`${where}: quant_type '${type}' is not nf4 or fp4`);
  if (!stateKey.endsWith(type)) throw new Error(`${where}: quant_type '${type}' in ${stateKey}`);
  if (st.blocksize !== Q4_BLOCK) throw new Error(`${where}: blocksize ${String(st.blocksize)} (aha reads bitsandbytes' default, ${Q4_BLOCK})`);
  const dtype = dtypeFromTorch(st.dtype);
  if (!dtype) throw new Error(`${where}: dtype '${String(st.dtype)}' is not float32, bfloat16 or float16`);
  const shape = st.shape as number[];
  if (!Array.isArray(shape) || shape.length !== 2 || shape[0] !== expect[0] || shape[1] !== expect[1])
    throw new Error(`${where}: quant_state shape [${String(shape)}], expected [${expect}]`);
  const info = f.info(weight);
  if (info.dtype !== "U8") throw new Error(`${where}: packed weight is ${info.dtype}, expected U8`);
  const absKey = need("absmax"), absInfo = f.info(absKey);
  const p: Q4Parts = {
    type, shape: [...shape], dtype, packed: u8(f.bytes(weight)), code: f.float32(need("quant_map")),
    absmax: absInfo.dtype === "U8" ? u8(f.bytes(absKey)) : f.float32(absKey),
  };
  if (f.has(`${weight}.nested_absmax`)) {
    if (st.nested_blocksize !== Q4_NESTED_BLOCK) throw new Error(`${where}: nested_blocksize ${String(st.nested_blocksize)} (expected ${Q4_NESTED_BLOCK})`);
    if (typeof st.nested_offset !== "number") throw new Error(`${where}: nested_offset is missing from its quant_state`);
    if (dtypeFromTorch(st.nested_dtype) !== "f32") throw new Error(`${where}: nested_dtype '${String(st.nested_dtype)}' (expected float32)`);
    p.nested = { absmax: f.float32(`${weight}.nested_absmax`), code: f.float32(need("nested_quant_map")), offset: Math.fround(st.nested_offset) };
  }
  return p;
}

/** The safetensors entries of one 4-bit weight `<module>.weight`, as bitsandbytes' QuantState.as_dict(packed=True) saves it. */
export function q4Entries(weight: string, p: Q4Parts): Record<string, StWriteTensor> {
  const state: Record<string, unknown> = { quant_type: p.type, blocksize: Q4_BLOCK, dtype: TORCH_NAME[p.dtype], shape: p.shape };
  if (p.nested) Object.assign(state, { nested_blocksize: Q4_NESTED_BLOCK, nested_dtype: "float32", nested_offset: p.nested.offset });
  // (Python's json.dumps spacing and float repr, so the bytes are the ones bitsandbytes would write)
  const json = JSON.stringify(state, (k, v) => (k === "nested_offset" ? `@@${pyFloat(v as number)}@@` : v))
    .replace(/"@@(.*?)@@"/, "$1").replace(/,"/g, ', "').replace(/":/g, '": ').replace(/,(?=\d|-)/g, ", ");
  const bytes = new TextEncoder().encode(json);
  const out: Record<string, StWriteTensor> = {
    [weight]: { dtype: "U8", shape: [p.packed.length, 1], data: p.packed },
    [`${weight}.absmax`]: p.absmax instanceof Uint8Array ? { dtype: "U8", shape: [p.absmax.length], data: p.absmax } : { dtype: "F32", shape: [p.absmax.length], data: p.absmax },
    [`${weight}.quant_map`]: { dtype: "F32", shape: [16], data: p.code },
    [`${weight}.quant_state.bitsandbytes__${p.type}`]: { dtype: "U8", shape: [bytes.length], data: bytes },
  };
  if (p.nested) {
    out[`${weight}.nested_absmax`] = { dtype: "F32", shape: [p.nested.absmax.length], data: p.nested.absmax };
    out[`${weight}.nested_quant_map`] = { dtype: "F32", shape: [256], data: p.nested.code };
  }
  return out;
}

/** Python's repr of a float (shortest round-trip digits; "0.0", "5e-05", "1e+16" forms). */
function pyFloat(x: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : x < 0 ? "-Infinity" : "NaN";
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e16)) {
    const [m, e] = x.toExponential().split("e");
    const exp = Number(e);
    return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** The suffixes of a 4-bit weight's companion tensors (what a reader of plain weights must skip). */
export const Q4_SUFFIXES = [".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4"];

/** The host values of a stored 16-bit or f32 tensor, for quantisation: words of bf16/f16, or f32. */
function hostValues(f: SafetensorsFile, name: string): { x: Float32Array | Uint16Array; dtype: "f32" | "bf16" | "f16" } {
  const dt = f.info(name).dtype;
  if (dt === "BF16" || dt === "F16") return { x: f.uint16(name), dtype: dt === "BF16" ? "bf16" : "f16" };
  return { x: f.float32(name), dtype: "f32" };
}

/**
 * A linear layer's weight `<module>.weight` [out, in]: stored 4-bit weights as they are; with `q` a 16-bit or f32
 * weight quantised now (on the host, then uploaded); otherwise WeightStore.load's tensor.
 */
export function loadLinearWeight(ws: WeightStore | ShapeOnlyWeights, name: string, shape: number[], keep16: boolean, q: Quant4Settings | null): Tensor {
  if (ws instanceof ShapeOnlyWeights) {
    if (!q) return ws.load(name, shape, keep16);
    const w = Q4Weight.allocate(shape, q.type, q.doubleQuant, ws.dtype === "f32" ? "f32" : ws.dtype === "f16" ? "f16" : "bf16", q.computeDtype, defaultBackend());
    w.name = name;
    return w.setCategory("weights").keep();
  }
  const f = ws.file(name);
  const stored = readStoredQ4(f, name, shape);
  if (!stored && !q) return ws.load(name, shape, keep16);
  let parts = stored;
  if (!parts) {
    const info = f.info(name);
    if (info.shape.length !== 2 || info.shape[0] !== shape[0] || info.shape[1] !== shape[1])
      throw new Error(`${f.path}: tensor '${name}' has shape [${info.shape}], expected [${shape}]`);
    const { x, dtype } = hostValues(f, name);
    parts = quantize4(x, dtype, shape, { type: q!.type, doubleQuant: q!.doubleQuant });
  }
  const w = Q4Weight.fromParts(parts, defaultBackend(), q?.computeDtype ?? "bf16");
  w.name = name;
  return w.setCategory("weights").keep();
}
