// Checkpoints: checkpoint-<step>/ holds the trainable weights (a PEFT adapter, or model.safetensors under full
// fine-tuning), the AdamW moments (optimizer.safetensors) and trainer_state.json (step, data position, seed).
// Every folder here (checkpoint-N/, final/) is built under a temporary name and swapped in (src/files/atomic.ts), so
// a kill leaves the old folder or the new one, whole; save_total_limit prunes the oldest the same way. Weights and
// moments that are not finite are refused on save and on load, naming the tensor.
import { copyFileSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, writeSafetensors, type StWriteTensor } from "../models/safetensors.ts";
import type { CausalLM } from "../models/model.ts";
import { savePeftAdapter } from "../models/peft.ts";
import { namingPath, removeFolder, writeFileAtomic, writeFolderAtomic } from "../files/atomic.ts";
import type { AdamW } from "./optim.ts";

export interface TrainerState {
  global_step: number;
  /** rollouts generated (each generation round one, and one per extra round of dynamic sampling): their seeds */
  rounds: number;
  /** prompts drawn from the dataset so far (absent in older checkpoints: rounds × prompts per round) */
  prompts?: number;
  seed: number;
  num_tokens: number;
}

/** Save the adapter (PEFT layout) of a model as the folder dir (written whole or not at all). */
export function saveAdapter(model: CausalLM, dir: string, baseModel: string): void {
  writeFolderAtomic(dir, (tmp) => writeAdapterFiles(model, tmp, baseModel));
}

function writeAdapterFiles(model: CausalLM, dir: string, baseModel: string): void {
  const ad = model.adapter;
  if (!ad) throw new Error("saveAdapter: the model has no LoRA adapter");
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const t of ad.parameters()) tensors.set(t.name!, { shape: t.shape, data: t.f32() });
  const c = ad.config;
  savePeftAdapter(dir, { r: c.r, lora_alpha: c.lora_alpha, target_modules: c.target_modules, use_rslora: !!c.use_rslora, lora_dropout: c.lora_dropout ?? 0, base_model_name_or_path: baseModel, task_type: "CAUSAL_LM" }, tensors);
}

/** extra: writes more files into the checkpoint folder before it gets its name (the kept KL reference). */
export function saveCheckpoint(outputDir: string, model: CausalLM, opt: AdamW, state: TrainerState, baseModel: string, limit?: number, extra?: (dir: string) => void): string {
  const final = join(outputDir, `checkpoint-${state.global_step}`);
  writeFolderAtomic(final, (tmp) => {
    const params = model.parameters();
    if (!model.isFullFinetune) writeAdapterFiles(model, tmp, baseModel);
    else {
      const w: Record<string, StWriteTensor> = {};
      for (const t of params) w[t.name!] = { dtype: "F32", shape: t.shape, data: t.f32() };
      writeSafetensors(join(tmp, "model.safetensors"), w);
    }
    const o: Record<string, StWriteTensor> = {};
    params.forEach((p, i) => {
      o[`m.${p.name}`] = { dtype: "F32", shape: p.shape, data: opt.m[i].f32() };
      o[`v.${p.name}`] = { dtype: "F32", shape: p.shape, data: opt.v[i].f32() };
    });
    writeSafetensors(join(tmp, "optimizer.safetensors"), o, { format: "pt", step: String(opt.step) });
    writeFileAtomic(join(tmp, "trainer_state.json"), JSON.stringify(state, null, 2) + "\n");
    extra?.(tmp);
  });
  if (limit) for (const old of listCheckpoints(outputDir).slice(0, -limit)) removeFolder(join(outputDir, `checkpoint-${old}`));
  return final;
}

/** Steps of the complete checkpoints in a run folder, ascending. */
export function listCheckpoints(outputDir: string): number[] {
  if (!existsSync(outputDir)) return [];
  return readdirSync(outputDir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter((m): m is RegExpExecArray => !!m && existsSync(join(outputDir, m[0], "trainer_state.json")))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Restore weights and optimiser state from a checkpoint folder; returns its trainer state. */
export function loadCheckpoint(dir: string, model: CausalLM, opt: AdamW): TrainerState {
  const statePath = join(dir, "trainer_state.json");
  const state = namingPath("read", statePath, () => {
    try {
      return JSON.parse(readFileSync(statePath, "utf8")) as TrainerState;
    } catch (e) {
      if (e instanceof SyntaxError) throw new Error(`${statePath}: not valid JSON (${e.message})`);
      throw e;
    }
  });
  const params = model.parameters();
  const weights = readSafetensors(join(dir, !model.isFullFinetune ? "adapter_model.safetensors" : "model.safetensors"));
  const optSt = readSafetensors(join(dir, "optimizer.safetensors"));
  params.forEach((p, i) => {
    const put = (t: { buf: unknown; backend: { write: (b: unknown, d: Float32Array) => void } }, data: Float32Array, what: string) => {
      if (data.length !== p.numel) throw new Error(`${dir}: ${what} has ${data.length} values, parameter ${p.name} needs ${p.numel}`);
      t.backend.write(t.buf, data);
    };
    put(p, weights.weight(p.name!), p.name!);
    put(opt.m[i], optSt.weight(`m.${p.name}`), `m.${p.name}`);
    put(opt.v[i], optSt.weight(`v.${p.name}`), `v.${p.name}`);
  });
  opt.step = Number(optSt.metadata.step ?? state.global_step);
  return state;
}

/** Save every weight of a fully fine-tuned model as a Hugging Face folder (config and tokenizer files copied). */
export function saveFullModel(model: CausalLM, dir: string): void {
  const w: Record<string, StWriteTensor> = {};
  for (const t of model.allWeights()) if (t.name) w[t.name] = { dtype: "F32", shape: t.shape, data: t.f32() };
  writeFolderAtomic(dir, (tmp) => {
    writeSafetensors(join(tmp, "model.safetensors"), w);
    for (const f of ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"]) {
      const src = join(model.config.dir, f);
      if (existsSync(src)) namingPath("copy to", join(tmp, f), () => copyFileSync(src, join(tmp, f)));
    }
  });
}
