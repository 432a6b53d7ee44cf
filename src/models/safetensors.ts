// safetensors reader and writer (format: ../shared/FORMATS.md §1).
// Written by hand: the format is an 8-byte length, a JSON header and a flat buffer, and no maintained npm reader
// validates the header the way the Rust reference does (tiling, sizes, trailing bytes) with errors naming the file.
// Reads whole files into memory (weights are needed whole anyway); views are copied into aligned typed arrays.
// Weights are checked as they are read (weight(): a floating dtype, every value finite) and float tensors as they are
// written (NaN / Infinity refused unless asked for), each error naming the file and the tensor.
import { openSync, readSync, closeSync, fstatSync } from "node:fs";
import { assertFinite, type FloatKind } from "../engine/finite.ts";
import { writeFileAtomic } from "../files/atomic.ts";

export type StDType = "F32" | "F16" | "BF16" | "I32" | "I64" | "U8" | "I8" | "F64" | "BOOL" | "I16" | "U16" | "U32" | "U64";

const ELEM_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};

const FLOAT_DTYPES = new Set<string>(["F32", "F16", "BF16", "F64"]);

export interface StTensorInfo {
  dtype: StDType;
  shape: number[];
  /** byte range inside the data buffer */
  begin: number;
  end: number;
}

/** A parsed safetensors file: header entries plus the raw data buffer. */
export class SafetensorsFile {
  constructor(
    readonly path: string,
    readonly tensors: Map<string, StTensorInfo>,
    readonly metadata: Record<string, string>,
    private readonly data: Buffer,
  ) {}

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`${this.path}: tensor '${name}' not found`);
    return t;
  }

  /** Raw bytes of one tensor (a view, not a copy). */
  bytes(name: string): Buffer {
    const t = this.info(name);
    return this.data.subarray(t.begin, t.end);
  }

  /** The tensor as float32, converting from f16/bf16/f64/int types. */
  float32(name: string): Float32Array {
    const t = this.info(name);
    return toFloat32(this.bytes(name), t.dtype, `${this.path}: tensor '${name}'`);
  }

  /**
   * A weight as float32: its dtype must be a floating one (integer data where floats are expected is refused) and
   * every value finite; errors name the file and the tensor.
   */
  weight(name: string): Float32Array {
    this.floatInfo(name);
    const data = this.float32(name);
    assertFinite(`${this.path}: tensor '${name}'`, data, "refusing to load a weight that is not finite");
    return data;
  }

  /** A bf16/f16 weight as its raw 16-bit words, checked finite like weight(). */
  weight16(name: string): Uint16Array {
    const t = this.floatInfo(name);
    const words = this.uint16(name);
    assertFinite(`${this.path}: tensor '${name}'`, words, "refusing to load a weight that is not finite", t.dtype === "BF16" ? "bf16" : "f16");
    return words;
  }

  private floatInfo(name: string): StTensorInfo {
    const t = this.info(name);
    if (!FLOAT_DTYPES.has(t.dtype)) throw new Error(`${this.path}: tensor '${name}' has dtype ${t.dtype}, expected a floating type (F32, F16, BF16 or F64)`);
    return t;
  }

  /** The tensor as int32 (from I32 or I64; I64 values must fit in 32 bits). */
  int32(name: string): Int32Array {
    const t = this.info(name);
    const b = this.bytes(name);
    if (t.dtype === "I32") return new Int32Array(copyAligned(b).buffer);
    if (t.dtype === "I64") {
      const v = new BigInt64Array(copyAligned(b).buffer);
      const out = new Int32Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = Number(v[i]);
      return out;
    }
    if (t.dtype === "F32" || t.dtype === "F64") return Int32Array.from(this.float32(name));
    throw new Error(`${this.path}: tensor '${name}' has dtype ${t.dtype}, expected an integer type`);
  }

  /** bf16/f16 tensor as its raw 16-bit words (no conversion). */
  uint16(name: string): Uint16Array {
    const t = this.info(name);
    if (t.dtype !== "BF16" && t.dtype !== "F16") throw new Error(`${this.path}: tensor '${name}' is ${t.dtype}, not 16-bit`);
    return new Uint16Array(copyAligned(this.bytes(name)).buffer);
  }
}

function copyAligned(b: Buffer): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

export function bf16ToF32(words: Uint16Array): Float32Array {
  const u = new Uint32Array(words.length);
  for (let i = 0; i < words.length; i++) u[i] = words[i] << 16;
  return new Float32Array(u.buffer);
}

export function f16ToF32(words: Uint16Array): Float32Array {
  const out = new Float32Array(words.length);
  for (let i = 0; i < words.length; i++) out[i] = halfToFloat(words[i]);
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 → bf16 with round-to-nearest-even (NaN kept as NaN). */
export function f32ToBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const v = u[i];
    if ((v & 0x7fffffff) > 0x7f800000) out[i] = (v >>> 16) | 0x40;
    else out[i] = (v + 0x7fff + ((v >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** float32 → IEEE half with round-to-nearest-even. */
export function f32ToF16(x: Float32Array): Uint16Array {
  const out = new Uint16Array(x.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < x.length; i++) {
    f[0] = x[i];
    const v = u[0];
    const sign = (v >>> 16) & 0x8000;
    const exp = (v >>> 23) & 0xff;
    let mant = v & 0x7fffff;
    if (exp === 0xff) { out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); continue; }
    let e = exp - 127 + 15;
    if (e >= 31) { out[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && (h & 1))) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    out[i] = sign | h;
  }
  return out;
}

export function toFloat32(b: Buffer | Uint8Array, dtype: string, what: string): Float32Array {
  const a = copyAligned(b as Buffer);
  switch (dtype) {
    case "F32": return new Float32Array(a.buffer);
    case "BF16": return bf16ToF32(new Uint16Array(a.buffer));
    case "F16": return f16ToF32(new Uint16Array(a.buffer));
    case "F64": return Float32Array.from(new Float64Array(a.buffer));
    case "I32": return Float32Array.from(new Int32Array(a.buffer));
    case "I64": return Float32Array.from(new BigInt64Array(a.buffer), (v) => Number(v));
    case "U8": case "BOOL": return Float32Array.from(a);
    case "I8": return Float32Array.from(new Int8Array(a.buffer));
    default: throw new Error(`${what}: dtype ${dtype} cannot be read as float32`);
  }
}

/** Parse a safetensors file, validating the header as the Rust reference does. */
export function readSafetensors(path: string): SafetensorsFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new Error(`${path}: cannot open safetensors file (${(e as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < 8) throw new Error(`${path}: truncated safetensors file (${size} bytes, header length needs 8)`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > 100_000_000) throw new Error(`${path}: header length ${n} exceeds 100 MB; not a safetensors file?`);
    if (8 + n > size) throw new Error(`${path}: truncated safetensors file: header says ${n} bytes, file has ${size - 8} after the length`);
    const hbuf = Buffer.alloc(n);
    readSync(fd, hbuf, 0, n, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hbuf.toString("utf8"));
    } catch (e) {
      throw new Error(`${path}: safetensors header is not valid JSON (${(e as Error).message})`);
    }
    const dataLen = size - 8 - n;
    const tensors = new Map<string, StTensorInfo>();
    let metadata: Record<string, string> = {};
    const spans: [number, number, string][] = [];
    for (const [name, v] of Object.entries(header)) {
      if (name === "__metadata__") { metadata = v as Record<string, string>; continue; }
      const e = v as { dtype?: string; shape?: number[]; data_offsets?: number[] };
      if (!e || typeof e.dtype !== "string" || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2)
        throw new Error(`${path}: tensor '${name}': header entry needs dtype, shape and data_offsets`);
      const eb = ELEM_BYTES[e.dtype];
      if (!eb) throw new Error(`${path}: tensor '${name}': unsupported dtype ${e.dtype}`);
      const [begin, end] = e.data_offsets;
      const numel = e.shape.reduce((a, b) => a * b, 1);
      if (end < begin) throw new Error(`${path}: tensor '${name}': data_offsets [${begin}, ${end}] are reversed`);
      if (end > dataLen) throw new Error(`${path}: tensor '${name}': data_offsets [${begin}, ${end}] out of range (data buffer is ${dataLen} bytes; file truncated?)`);
      if (end - begin !== numel * eb)
        throw new Error(`${path}: tensor '${name}': ${end - begin} bytes for shape [${e.shape}] of ${e.dtype} (expected ${numel * eb})`);
      tensors.set(name, { dtype: e.dtype as StDType, shape: e.shape, begin, end });
      spans.push([begin, end, name]);
    }
    spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let pos = 0;
    for (const [b, e, name] of spans) {
      if (b !== pos) throw new Error(`${path}: tensor '${name}': data_offsets start at ${b}, expected ${pos} (gap or overlap)`);
      pos = e;
    }
    if (pos !== dataLen) throw new Error(`${path}: data buffer is ${dataLen} bytes but tensors cover ${pos} (trailing or missing bytes)`);
    const data = Buffer.alloc(dataLen);
    if (dataLen > 0) {
      let off = 0;
      while (off < dataLen) {
        const r = readSync(fd, data, off, Math.min(dataLen - off, 1 << 30), 8 + n + off);
        if (r <= 0) throw new Error(`${path}: unexpected end of file`);
        off += r;
      }
    }
    return new SafetensorsFile(path, tensors, metadata, data);
  } finally {
    closeSync(fd);
  }
}

export interface StWriteTensor {
  dtype: StDType;
  shape: number[];
  data: ArrayBufferView;
}

export interface StWriteOptions {
  /** write NaN / ±Infinity in float tensors instead of refusing them (default false: weights are never written so) */
  allowNonFinite?: boolean;
}

/** Words of a float tensor to check, with their kind; null for integer tensors. */
function floatWords(t: StWriteTensor): { data: ArrayLike<number>; kind: FloatKind } | null {
  const d = t.data;
  const bytes = (size: number) => (d.byteOffset % size === 0 ? d.buffer : new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice().buffer);
  const at = (size: number) => (d.byteOffset % size === 0 ? d.byteOffset : 0);
  if (t.dtype === "F32") return { data: d instanceof Float32Array ? d : new Float32Array(bytes(4), at(4), d.byteLength / 4), kind: "f32" };
  if (t.dtype === "BF16" || t.dtype === "F16") return { data: new Uint16Array(bytes(2), at(2), d.byteLength / 2), kind: t.dtype === "BF16" ? "bf16" : "f16" };
  return null;
}

/** Header and data pieces of a safetensors file (tensors sorted by alignment then name, header padded to 8 bytes). */
function safetensorsParts(tensors: Record<string, StWriteTensor>, metadata: Record<string, string>, where: string, o: StWriteOptions): Uint8Array[] {
  const names = Object.keys(tensors).sort((a, b) => (ELEM_BYTES[tensors[b].dtype] - ELEM_BYTES[tensors[a].dtype]) || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const name of names) {
    const t = tensors[name];
    const len = t.data.byteLength;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (len !== numel * ELEM_BYTES[t.dtype]) throw new Error(`tensor '${name}': ${len} bytes for shape [${t.shape}] of ${t.dtype}`);
    const w = o.allowNonFinite ? null : floatWords(t);
    if (w) assertFinite(`${where}tensor '${name}'`, w.data, "refusing to write values that are not finite", w.kind);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + len] };
    off += len;
  }
  let hjson = JSON.stringify(header);
  while ((Buffer.byteLength(hjson) % 8) !== 0) hjson += " ";
  const hb = Buffer.from(hjson, "utf8");
  const head = Buffer.alloc(8 + hb.length);
  head.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(head, 8);
  return [head, ...names.map((n) => { const d = tensors[n].data; return new Uint8Array(d.buffer, d.byteOffset, d.byteLength); })];
}

/** Serialise tensors with {"format":"pt"} metadata into one buffer (small files: adapters, tests). */
export function serializeSafetensors(tensors: Record<string, StWriteTensor>, metadata: Record<string, string> = { format: "pt" }, o: StWriteOptions = {}): Buffer {
  return Buffer.concat(safetensorsParts(tensors, metadata, "", o));
}

/** Write a safetensors file of any size, atomically, without first joining it into one buffer. */
export function writeSafetensors(path: string, tensors: Record<string, StWriteTensor>, metadata: Record<string, string> = { format: "pt" }, o: StWriteOptions = {}): void {
  writeFileAtomic(path, safetensorsParts(tensors, metadata, `${path}: `, o));
}
