// The safetensors writer: the file written piece by piece (so files over 2 GiB work: one write call takes at most
// 2 GiB) holds exactly the bytes of the one-buffer serialisation, reads back, and leaves no temporary file behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readSafetensors, serializeSafetensors, writeSafetensors, type StWriteTensor } from "../src/models/safetensors.ts";

test("writeSafetensors writes the same bytes as serializeSafetensors, atomically", () => {
  const dir = mkdtempSync(join(tmpdir(), "aha-st-"));
  try {
    const tensors: Record<string, StWriteTensor> = {
      "b.weight": { dtype: "BF16", shape: [3, 5], data: Uint16Array.from({ length: 15 }, (_, i) => 0x3f80 + i) },
      "a.weight": { dtype: "F32", shape: [4, 2], data: Float32Array.from({ length: 8 }, (_, i) => i / 3) },
      "ids": { dtype: "I32", shape: [3], data: Int32Array.of(-1, 0, 7) },
    };
    const p = join(dir, "model.safetensors");
    writeSafetensors(p, tensors, { format: "pt", note: "x" });
    assert.deepEqual(readFileSync(p), serializeSafetensors(tensors, { format: "pt", note: "x" }));
    assert.deepEqual(readdirSync(dir), ["model.safetensors"]);
    const f = readSafetensors(p);
    assert.deepEqual([...f.tensors.keys()].sort(), ["a.weight", "b.weight", "ids"]);
    assert.deepEqual(f.metadata, { format: "pt", note: "x" });
    assert.deepEqual(f.tensors.get("b.weight")!.shape, [3, 5]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
