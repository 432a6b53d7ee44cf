// GGUF v3 container writer (FORMATS.md §2): typed key/values, tensor infos, 32-aligned data; written to a temp name
// and renamed, tensor by tensor, so peak memory is one tensor and a kill never leaves a file under the final name.
// Is not: a reader (tests use @huggingface/gguf) nor a converter (gguf-model.ts decides names, types and values).
// Hand-written: @huggingface/gguf can serialise a header but not tensor data, and no npm package writes whole GGUF
// files; the format is a few dozen lines.
import { fsyncSync } from "node:fs";
import { ggmlNbytes, type GgmlType } from "./gguf-types.js";
import { writeAll, writeFileVia } from "../files/atomic.ts";

/** A metadata value with its GGUF type (llama.cpp reads each key with an exact-type getter, §3.1). */
export type GgufValue =
  | { type: "u8" | "u16" | "u32" | "i32" | "f32" | "u64" | "i64" | "f64"; value: number | bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "u32" | "i32" | "f32" | "string" | "bool"; value: (number | string | boolean)[] };

export type GgufKV = [key: string, value: GgufValue];

/** One tensor to write: ggml dims (ne[0] fastest), type, and a producer called when its data is due. */
export interface GgufTensorPlan {
  name: string;
  ne: number[];
  type: GgmlType;
  data: () => Uint8Array;
}

const VT = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

/** Growable little-endian byte sink for the header. */
class Sink {
  buf = Buffer.alloc(1 << 16);
  n = 0;
  private need(k: number): void {
    if (this.n + k <= this.buf.length) return;
    let len = this.buf.length * 2;
    while (len < this.n + k) len *= 2;
    const b = Buffer.alloc(len);
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u8(v: number) { this.need(1); this.buf.writeUInt8(v, this.n); this.n += 1; }
  u16(v: number) { this.need(2); this.buf.writeUInt16LE(v, this.n); this.n += 2; }
  u32(v: number) { this.need(4); this.buf.writeUInt32LE(v >>> 0, this.n); this.n += 4; }
  i32(v: number) { this.need(4); this.buf.writeInt32LE(v, this.n); this.n += 4; }
  f32(v: number) { this.need(4); this.buf.writeFloatLE(v, this.n); this.n += 4; }
  f64(v: number) { this.need(8); this.buf.writeDoubleLE(v, this.n); this.n += 8; }
  u64(v: number | bigint) { this.need(8); this.buf.writeBigUInt64LE(BigInt(v), this.n); this.n += 8; }
  i64(v: number | bigint) { this.need(8); this.buf.writeBigInt64LE(BigInt(v), this.n); this.n += 8; }
  str(s: string) { const b = Buffer.from(s, "utf8"); this.u64(b.length); this.need(b.length); b.copy(this.buf, this.n); this.n += b.length; }
  scalar(t: string, v: number | bigint | string | boolean) {
    switch (t) {
      case "u8": return this.u8(Number(v));
      case "u16": return this.u16(Number(v));
      case "u32": return this.u32(Number(v));
      case "i32": return this.i32(Number(v));
      case "f32": return this.f32(Number(v));
      case "f64": return this.f64(Number(v));
      case "u64": return this.u64(v as number);
      case "i64": return this.i64(v as number);
      case "bool": return this.u8(v ? 1 : 0);
      case "string": return this.str(String(v));
      default: throw new Error(`GGUF: unknown value type ${t}`);
    }
  }
}

function pad(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Serialise the header (magic … tensor infos, padded to the alignment). Offsets follow tensor order. */
export function ggufHeader(kvs: GgufKV[], tensors: Omit<GgufTensorPlan, "data">[], alignment = 32): Buffer {
  const s = new Sink();
  s.u32(0x46554747);
  s.u32(3);
  s.u64(tensors.length);
  s.u64(kvs.length);
  const seen = new Set<string>();
  for (const [key, v] of kvs) {
    if (seen.has(key)) throw new Error(`GGUF: duplicate key ${key}`);
    seen.add(key);
    s.str(key);
    s.u32(VT[v.type]);
    if (v.type === "array") {
      s.u32(VT[v.itemType]);
      s.u64(v.value.length);
      for (const x of v.value) s.scalar(v.itemType, x);
    } else s.scalar(v.type, v.value);
  }
  let off = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (Buffer.byteLength(t.name) >= 64) throw new Error(`GGUF: tensor name '${t.name}' is 64 bytes or longer`);
    if (names.has(t.name)) throw new Error(`GGUF: duplicate tensor ${t.name}`);
    names.add(t.name);
    s.str(t.name);
    s.u32(t.ne.length);
    for (const d of t.ne) s.u64(d);
    s.u32(t.type);
    s.u64(off);
    off += pad(ggmlNbytes(t.type, t.ne), alignment);
  }
  const total = pad(s.n, alignment);
  const out = Buffer.alloc(total);
  s.buf.copy(out, 0, 0, s.n);
  return out;
}

export interface WriteGgufOptions {
  alignment?: number;
  /** called after each tensor with (tensors done, tensor count, name) */
  onTensor?: (done: number, total: number, name: string) => void;
}

/** Write a GGUF file at `path` via `<path>.tmp-<pid>` + rename. Returns the byte size. */
export function writeGguf(path: string, kvs: GgufKV[], tensors: GgufTensorPlan[], opts: WriteGgufOptions = {}): number {
  const alignment = opts.alignment ?? 32;
  const header = ggufHeader(kvs, tensors, alignment);
  let pos = 0;
  writeFileVia(path, (fd) => {
    pos += writeAll(fd, header);
    const zeros = Buffer.alloc(alignment);
    tensors.forEach((t, k) => {
      const bytes = t.data();
      const want = ggmlNbytes(t.type, t.ne);
      if (bytes.byteLength !== want) throw new Error(`GGUF: tensor ${t.name}: producer gave ${bytes.byteLength} bytes, expected ${want}`);
      pos += writeAll(fd, bytes);
      const p = pad(want, alignment) - want;
      if (p) pos += writeAll(fd, zeros.subarray(0, p));
      opts.onTensor?.(k + 1, tensors.length, t.name);
    });
    fsyncSync(fd);
  });
  return pos;
}

