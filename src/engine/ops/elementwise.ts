// Elementwise and shape ops: add/sub/mul with trailing broadcast (b's elements repeat over a's leading
// dimensions), scale, sum, reshape, column slices and copies. Backward of a broadcast operand sums over the repeats.
import { Tensor, viewAs } from "../tensor.ts";
import { record } from "../autograd.ts";
import { assertF32, like, likeZero, sameBackend } from "./util.ts";

const OPS = { add: 0, sub: 1, mul: 2 } as const;

function binaryOp(name: keyof typeof OPS, a: Tensor, b: Tensor): Tensor {
  assertF32(name, a, b);
  sameBackend(name, a, b);
  if (a.numel % b.numel !== 0) throw new Error(`${name}: shape [${b.shape}] does not broadcast over [${a.shape}]`);
  const out = like(a);
  a.backend.k.binary(out.buf, a.buf, b.buf, a.numel, b.numel, OPS[name]);
  return record(out, name, [a, b], (g, owned) => {
    const k = a.backend.k;
    let ga: Tensor | null = null, gb: Tensor | null = null;
    // add/sub pass g itself on (moved, no copy) as a's gradient; add gives b the same tensor when shapes match
    if (a.requiresGrad) {
      if (name !== "mul" && owned) ga = g.moveTo(a.shape);
      else {
        ga = like(a);
        if (name === "mul") k.binary(ga.buf, g.buf, b.buf, a.numel, b.numel, 2);
        else k.copy2d(ga.buf, g.buf, 1, a.numel, 0, 0, false);
      }
    }
    if (b.requiresGrad) {
      const gv = name !== "mul" && ga ? ga : g; // g's values, wherever they now live (ga took g's buffer over)
      const sameShape = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
      if (name === "add" && owned && ga && sameShape) gb = ga; // one buffer for both (autograd counts its holders)
      else if (name === "add" && owned && !ga && b.numel === a.numel) gb = g.moveTo(b.shape);
      else if (name !== "mul" && b.numel === a.numel) {
        gb = like(b);
        if (name === "add") k.copy2d(gb.buf, gv.buf, 1, b.numel, 0, 0, false);
        else k.scale(gb.buf, gv.buf, -1, b.numel);
      } else {
        gb = like(b);
        let tmp: Tensor | null = null;
        if (name === "mul") { tmp = like(a); k.binary(tmp.buf, g.buf, a.buf, a.numel, a.numel, 2); }
        k.sum_rows(gb.buf, (tmp ?? gv).buf, a.numel / b.numel, b.numel, false);
        if (name === "sub") k.scale(gb.buf, gb.buf, -1, b.numel);
        tmp?.dispose();
      }
    }
    return [ga, gb];
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binaryOp("add", a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binaryOp("sub", a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binaryOp("mul", a, b);

export function scale(a: Tensor, s: number): Tensor {
  assertF32("scale", a);
  const out = like(a);
  a.backend.k.scale(out.buf, a.buf, s, a.numel);
  return record(out, "scale", [a], (g) => {
    const ga = like(a);
    a.backend.k.scale(ga.buf, g.buf, s, a.numel);
    return [ga];
  });
}

/** Sum of all elements → [1]. */
export function sum(a: Tensor): Tensor {
  assertF32("sum", a);
  const out = like(a, [1]);
  a.backend.k.sum_rows(out.buf, a.buf, a.numel, 1, false);
  return record(out, "sum", [a], (g) => {
    const v = g.item();
    const ga = like(a);
    const ones = new Float32Array(a.numel).fill(v);
    a.backend.write(ga.buf, ones);
    return [ga];
  });
}

/** Same data, new shape (no copy forward; the gradient goes back in its own buffer, copied only when not owned). */
export function reshape(a: Tensor, shape: number[]): Tensor {
  const out = viewAs(a, shape);
  return record(out, "reshape", [a], (g, owned) => {
    if (owned) return [g.moveTo(a.shape)];
    const ga = like(a);
    a.backend.k.copy2d(ga.buf, g.buf, 1, a.numel, 0, 0, false);
    return [ga];
  });
}

/** Columns [c0, c0 + width) of a [N, C] tensor → [N, width] (copy). */
export function sliceCols(a: Tensor, c0: number, width: number): Tensor {
  assertF32("sliceCols", a);
  const C = a.shape[a.shape.length - 1];
  const N = a.numel / C;
  if (c0 < 0 || c0 + width > C) throw new Error(`sliceCols: [${c0}, ${c0 + width}) out of ${C} columns`);
  const out = like(a, [...a.shape.slice(0, -1), width]);
  const k = a.backend.k;
  k.copy2d(out.buf, a.backend.view(a.buf, "f32", c0, a.numel - c0), N, width, width, C, false);
  return record(out, "sliceCols", [a], (g) => {
    const ga = likeZero(a);
    k.copy2d(a.backend.view(ga.buf, "f32", c0, a.numel - c0), g.buf, N, width, C, width, false);
    return [ga];
  });
}
