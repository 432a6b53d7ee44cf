// `aha logits`: the parity tool. Reads input_ids (+ optional attention_mask, position_ids) from a safetensors file,
// writes float32 logits [B, T, V] for comparison with transformers.
import { existsSync } from "node:fs";
import { readSafetensors, writeSafetensors } from "../models/safetensors.ts";
import { CausalLM } from "../models/model.ts";
import { noGrad, scope } from "../engine/index.ts";
import type { Quant4Settings } from "../models/bnb4.ts";

export interface LogitsArgs {
  model: string;
  revision?: string;
  adapter?: string;
  input: string;
  output: string;
  /** quantise the linear layers to 4 bits at load (--load-in-4bit) */
  quantization?: Quant4Settings | null;
}

export function runLogits(a: LogitsArgs): void {
  if (!existsSync(a.input)) throw new Error(`${a.input}: input file not found`);
  const inp = readSafetensors(a.input);
  if (!inp.has("input_ids")) throw new Error(`${a.input}: tensor 'input_ids' is missing`);
  const shape = inp.info("input_ids").shape;
  if (shape.length !== 2) throw new Error(`${a.input}: tensor 'input_ids' must be [B, T], got [${shape}]`);
  const [B, T] = shape;
  const opt = (name: string) => {
    if (!inp.has(name)) return undefined;
    const s = inp.info(name).shape;
    if (s.length !== 2 || s[0] !== B || s[1] !== T) throw new Error(`${a.input}: tensor '${name}' must be [${B}, ${T}], got [${s}]`);
    return inp.int32(name);
  };
  const model = CausalLM.load(a.model, { adapter: a.adapter, revision: a.revision, quantization: a.quantization });
  const V = model.config.vocabSize;
  const ids = inp.int32("input_ids");
  for (const id of ids) if (id < 0 || id >= V) throw new Error(`${a.input}: input_ids holds ${id}, outside the vocabulary [0, ${V})`);
  const logits = noGrad(() => scope(() => model.logits(model.forward(ids, B, T, { attentionMask: opt("attention_mask"), positions: opt("position_ids") })).f32()));
  writeSafetensors(a.output, { logits: { dtype: "F32", shape: [B, T, V], data: logits } });
}
