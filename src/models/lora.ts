// LoRA adapters applied on the fly (never merged into the base): y = x Wᵀ + s · (drop(x) Aᵀ) Bᵀ, with
// s = alpha / r (or alpha / √r with rsLoRA). Loads PEFT adapter folders (any target_modules, incl. Phi-3's fused
// qkv_proj / gate_up_proj) and creates fresh ones with PEFT's init (A Kaiming-uniform, B zero).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors } from "./safetensors.ts";
import { fromHost, zeros, type Tensor } from "../engine/index.ts";

export interface LoraConfig {
  r: number;
  lora_alpha: number;
  /** module name suffixes, a regex string (full match) or "all-linear" */
  target_modules: string[] | string;
  lora_dropout?: number;
  use_rslora?: boolean;
}

export interface LoraPair {
  /** [r, in] */
  A: Tensor;
  /** [out, r] */
  B: Tensor;
}

/** True when PEFT would wrap the module `name` (e.g. model.layers.0.self_attn.q_proj) for these targets. */
export function matchesTarget(name: string, targets: string[] | string): boolean {
  if (targets === "all-linear") return !name.endsWith("lm_head");
  if (typeof targets === "string") return new RegExp(`^(?:${targets})$`).test(name);
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

export class LoraAdapter {
  readonly modules = new Map<string, LoraPair>();
  enabled = true;
  readonly scale: number;

  constructor(readonly config: LoraConfig) {
    if (!(config.r > 0)) throw new Error(`LoRA: r must be a positive integer, got ${config.r}`);
    this.scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  }

  get(module: string): LoraPair | undefined {
    return this.enabled ? this.modules.get(module) : undefined;
  }

  /** Trainable tensors, in a stable order. */
  parameters(): Tensor[] {
    return [...this.modules.values()].flatMap((p) => [p.A, p.B]);
  }

  /** PEFT's saved key for a module's A or B. */
  static peftKey(module: string, which: "A" | "B"): string {
    return `base_model.model.${module}.lora_${which}.weight`;
  }

  /** A fresh adapter for these modules ({name: [in, out]}): A ~ kaiming_uniform(a=√5) like PEFT, B = 0. */
  static create(config: LoraConfig, shapes: Map<string, [number, number]>, rng: () => number): LoraAdapter {
    const ad = new LoraAdapter(config);
    for (const [name, [inF, outF]] of shapes) {
      if (!matchesTarget(name, config.target_modules)) continue;
      const bound = 1 / Math.sqrt(inF); // kaiming_uniform with a = √5: gain √(2/6) · √(3/in) = 1/√in
      const a = new Float32Array(config.r * inF).map(() => (rng() * 2 - 1) * bound);
      const A = fromHost(a, [config.r, inF]).keep();
      const B = zeros([outF, config.r]).keep();
      A.name = LoraAdapter.peftKey(name, "A");
      B.name = LoraAdapter.peftKey(name, "B");
      A.requiresGrad = B.requiresGrad = true;
      ad.modules.set(name, { A, B });
    }
    if (ad.modules.size === 0) throw new Error(`LoRA: target_modules ${JSON.stringify(config.target_modules)} matched no module`);
    return ad;
  }

  /** Load a PEFT adapter folder; `shapes` ({module: [in, out]}) validates every pair. */
  static load(dir: string, shapes: Map<string, [number, number]>): LoraAdapter {
    const cfgPath = join(dir, "adapter_config.json");
    if (!existsSync(cfgPath)) throw new Error(`${dir}: adapter_config.json not found`);
    const raw = JSON.parse(readFileSync(cfgPath, "utf8"));
    for (const k of ["r", "lora_alpha", "target_modules"]) if (raw[k] === undefined) throw new Error(`${cfgPath}: field '${k}' is missing`);
    if (raw.peft_type && raw.peft_type !== "LORA") throw new Error(`${cfgPath}: peft_type '${raw.peft_type}' is not LORA`);
    if (raw.use_dora) throw new Error(`${cfgPath}: DoRA adapters are not supported`);
    const ad = new LoraAdapter({ r: raw.r, lora_alpha: raw.lora_alpha, target_modules: raw.target_modules, lora_dropout: raw.lora_dropout ?? 0, use_rslora: !!raw.use_rslora });
    const st = readSafetensors(join(dir, "adapter_model.safetensors"));
    for (const key of st.tensors.keys()) {
      const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(key);
      if (!m) continue;
      const [, module, which] = m;
      const shp = shapes.get(module);
      if (!shp) throw new Error(`${st.path}: tensor '${key}' targets '${module}', which the model does not have`);
      const [inF, outF] = shp;
      const expect = which === "A" ? [raw.r, inF] : [outF, raw.r];
      const info = st.info(key);
      if (info.shape.length !== 2 || info.shape[0] !== expect[0] || info.shape[1] !== expect[1])
        throw new Error(`${st.path}: tensor '${key}' has shape [${info.shape}], expected [${expect}]`);
      const t = fromHost(st.float32(key), expect).keep();
      t.name = LoraAdapter.peftKey(module, which as "A" | "B");
      t.requiresGrad = true;
      const pair = ad.modules.get(module) ?? ({} as LoraPair);
      pair[which as "A" | "B"] = t;
      ad.modules.set(module, pair);
    }
    for (const [m, p] of ad.modules) if (!p.A || !p.B) throw new Error(`${st.path}: module '${m}' has only one of lora_A / lora_B`);
    if (ad.modules.size === 0) throw new Error(`${st.path}: no LoRA tensors found`);
    return ad;
  }

  dispose(): void {
    for (const p of this.modules.values()) { p.A.dispose(); p.B.dispose(); }
    this.modules.clear();
  }
}
