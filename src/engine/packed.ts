// Weights of projections that read one input (q/k/v, gate/up) stored side by side in one buffer, each starting on a
// 128-element boundary (256 bytes in 16 bits, cuBLASLt's alignment). The modules' weights become views of it, so
// the projections of one shape (k and v, gate and up) are one strided-batched GEMM in loraLinearGroup: the distance
// between their weights is the batch stride. (The model packs its layers' weights at load: models/model.ts.)
import { Tensor, zeros } from "./tensor.ts";

const ALIGN = 128;
const packed = new WeakMap<Tensor, { storage: Tensor; offset: number }>();

/** The buffer a packed weight is a view of, and its element offset there (undefined for a weight of its own). */
export function packedOf(W: Tensor): { storage: Tensor; offset: number } | undefined {
  return packed.get(W);
}

/**
 * Copy these weights into one new buffer and dispose them; returns the buffer (which owns the memory) and the views
 * that replace the weights, in order. Null (nothing done) unless there are two or more of one dtype and device.
 */
export function packWeights(ws: Tensor[]): { storage: Tensor; views: Tensor[] } | null {
  if (ws.length < 2) return null;
  const dt = ws[0].dtype, be = ws[0].backend;
  if (dt === "q4" || ws.some((w) => w.dtype !== dt || w.backend !== be)) return null; // (4-bit weights keep their own buffers)
  const offsets: number[] = [];
  let end = 0;
  for (const w of ws) {
    const start = Math.ceil(end / ALIGN) * ALIGN;
    offsets.push(start);
    end = start + w.numel;
  }
  const storage = zeros([end], dt, be).setCategory("weights").keep();
  const views = ws.map((w, i) => {
    const v = new Tensor(w.shape, dt, be.view(storage.buf, dt, offsets[i], w.numel), be, false).setCategory("weights").keep();
    v.name = w.name;
    be.write(v.buf, w.data()); // at load only: through the host keeps this one path for every dtype and device
    packed.set(v, { storage, offset: offsets[i] });
    w.dispose();
    return v;
  });
  return { storage, views };
}
