// LoRA adapters applied on the fly (never merged into the base): y = x Wᵀ + s · (drop(x) Aᵀ) Bᵀ, with
// s = alpha / r (or alpha / √r with rsLoRA). Loads PEFT adapter folders (any target_modules, incl. Phi-3's fused
// qkv_proj / gate_up_proj) and creates fresh ones with PEFT's init (A Kaiming-uniform, B zero).
import { join } from "node:path";
import { loadPeftAdapter, loraModules, peftScaling } from "./peft.ts";
import { defaultBackend, type Tensor } from "../engine/index.ts";
import { FlatParams, type FlatSpec } from "../engine/flat.ts";

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
  /** alpha / r for this module (rank_pattern / alpha_pattern may differ per module) */
  scale: number;
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
  /** one buffer holding every A and B: all A's in module order, then all B's (so the A's of projections that read
   *  the same input, q/k/v and gate/up, are adjacent rows of one matrix: see loraLinearGroup) */
  private storage: FlatParams | null = null;

  constructor(readonly config: LoraConfig) {
    if (!(config.r > 0)) throw new Error(`LoRA: r must be a positive integer, got ${config.r}`);
    this.scale = config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
  }

  get(module: string): LoraPair | undefined {
    return this.enabled ? this.modules.get(module) : undefined;
  }

  /** Store these pairs ({module: A and B specs}) in one flat buffer, A's first, and register them. */
  private place(pairs: [string, { A: FlatSpec; B: FlatSpec; scale: number }][]): void {
    // an A follows the previous module's A with no padding when both read the same input (same parent module, same
    // in-features: q/k/v, gate/up), so that loraLinearGroup sees them as one matrix whatever r · in is
    const parent = (name: string) => name.slice(0, name.lastIndexOf("."));
    const As = pairs.map(([name, p], i) => ({ ...p.A, packed: i > 0 && parent(name) === parent(pairs[i - 1][0]) && p.A.shape[1] === pairs[i - 1][1].A.shape[1] }));
    const specs = [...As, ...pairs.map(([, p]) => p.B)];
    this.storage = new FlatParams(defaultBackend(), specs, "lora");
    const n = pairs.length;
    pairs.forEach(([name, p], i) => {
      const A = this.storage!.members[i], B = this.storage!.members[n + i];
      A.requiresGrad = B.requiresGrad = true;
      this.modules.set(name, { A, B, scale: p.scale });
    });
  }

  /** Bytes of the adapter's storage (its tensors plus the alignment padding between them). */
  get bytes(): number {
    return this.storage?.data.bytes ?? 0;
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
    const pairs: [string, { A: FlatSpec; B: FlatSpec; scale: number }][] = [];
    for (const [name, [inF, outF]] of shapes) {
      if (!matchesTarget(name, config.target_modules)) continue;
      const bound = 1 / Math.sqrt(inF); // kaiming_uniform with a = √5: gain √(2/6) · √(3/in) = 1/√in
      const a = new Float32Array(config.r * inF).map(() => (rng() * 2 - 1) * bound);
      pairs.push([name, { A: { shape: [config.r, inF], name: LoraAdapter.peftKey(name, "A"), data: a },
        B: { shape: [outF, config.r], name: LoraAdapter.peftKey(name, "B") }, scale: ad.scale }]);
    }
    if (pairs.length === 0) throw new Error(`LoRA: target_modules ${JSON.stringify(config.target_modules)} matched no module`);
    ad.place(pairs);
    return ad;
  }

  /** Load a PEFT adapter folder (models/peft.ts reads it); `shapes` ({module: [in, out]}) validates every pair. */
  static load(dir: string, shapes: Map<string, [number, number]>): LoraAdapter {
    const { config, tensors } = loadPeftAdapter(dir);
    const where = join(dir, "adapter_model.safetensors");
    for (const k of ["r", "lora_alpha", "target_modules"] as const)
      if (config[k] === undefined) throw new Error(`${join(dir, "adapter_config.json")}: field '${k}' is missing`);
    if (config.use_dora) throw new Error(`${join(dir, "adapter_config.json")}: DoRA adapters are not supported`);
    const ad = new LoraAdapter({ r: config.r, lora_alpha: config.lora_alpha, target_modules: config.target_modules, lora_dropout: config.lora_dropout ?? 0, use_rslora: !!config.use_rslora });
    let modules: ReturnType<typeof loraModules>;
    try {
      modules = loraModules({ config, tensors });
    } catch (e) {
      throw new Error(`${where}: ${(e as Error).message}`);
    }
    const pairs: [string, { A: FlatSpec; B: FlatSpec; scale: number }][] = [];
    for (const [module, pair] of modules) {
      const shp = shapes.get(module);
      if (!shp) throw new Error(`${where}: LoRA module '${module}' targets a module the model does not have`);
      const [inF, outF] = shp;
      const check = (which: "A" | "B", t: { shape: number[] }, want: number[]) => {
        if (t.shape.length !== 2 || t.shape[0] !== want[0] || t.shape[1] !== want[1])
          throw new Error(`${where}: tensor '${LoraAdapter.peftKey(module, which)}' has shape [${t.shape}], expected [${want}]`);
      };
      const r = pair.A.shape[0];
      check("A", pair.A, [r, inF]);
      check("B", pair.B, [outF, r]);
      const spec = (which: "A" | "B", t: { shape: number[]; data: Float32Array }): FlatSpec => ({ shape: t.shape, data: t.data, name: LoraAdapter.peftKey(module, which) });
      pairs.push([module, { A: spec("A", pair.A), B: spec("B", pair.B), scale: peftScaling(config, module) }]);
    }
    if (pairs.length === 0) throw new Error(`${where}: no LoRA tensors found`);
    const order = new Map([...shapes.keys()].map((name, i) => [name, i]));
    ad.place(pairs.sort((a, b) => order.get(a[0])! - order.get(b[0])!)); // the model's module order, whatever the file's
    return ad;
  }

  dispose(): void {
    this.storage?.dispose();
    this.storage = null;
    this.modules.clear();
  }
}
