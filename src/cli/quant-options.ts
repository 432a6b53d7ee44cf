// The 4-bit loading flags that the model-loading commands share (logits, generate, eval, export, serve):
// --load-in-4bit, --quant-type nf4|fp4, --no-double-quant, --compute-dtype, into the loader's Quant4Settings.
import { Option, type Command } from "commander";
import type { Quant4Settings } from "../models/bnb4.ts";
import { dtypeFromTorch } from "../models/bnb4.ts";

export interface QuantArgs {
  loadIn4bit?: boolean;
  quantType?: "nf4" | "fp4";
  doubleQuant?: boolean;
  computeDtype?: string;
}

export function addQuantOptions(cmd: Command): Command {
  return cmd
    .option("--load-in-4bit", "quantise the linear layers to 4 bits at load (bitsandbytes' format; QLoRA); folders saved in 4-bit load as stored anyway")
    .addOption(new Option("--quant-type <t>", "4-bit codes").choices(["nf4", "fp4"]).default("nf4"))
    .option("--no-double-quant", "keep the 4-bit blocks' scales in f32 (default: quantised too)")
    .addOption(new Option("--compute-dtype <t>", "CUDA's 4-bit products compute in").choices(["bfloat16", "float16", "float32"]).default("bfloat16"));
}

/** The loader's settings for these flags (null: no quantise-at-load). */
export function quantizationOf(a: QuantArgs): Quant4Settings | null {
  if (!a.loadIn4bit) return null;
  return { type: a.quantType ?? "nf4", doubleQuant: a.doubleQuant !== false, computeDtype: dtypeFromTorch(a.computeDtype ?? "bfloat16") ?? "bf16" };
}
