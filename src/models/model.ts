// One model definition for the llama family (llama, qwen2, qwen3, mistral, gemma3 text, phi3): the config flags
// select QKV bias, QK-norm, Gemma's (1 + w) sandwich norms and embedding scale, fused Phi-3 projections, partial
// rotary, per-layer rope and sliding windows. LoRA is applied on the fly; `withoutAdapter` gives the base model
// (the GRPO reference) from the same weights.
import { fromHost, empty, add, scale, rmsNorm, rmsNorm16, ropePair, glu, glu16, embedding, dropoutMask, attention, attention16, type AttentionOpts, reshape, sliceCols, tokenLogprobs, matmul, loraLinear, loraLinearGroup, linearGroup, groupable, type LoraPart, type LinearPart, checkpoint,
  isGradEnabled, type Backend, type DType, type Tensor, type TokenLogprobs } from "../engine/index.ts";
import { join } from "node:path";
import { readModelConfig, type ModelConfig, type RopeParams } from "./config.ts";
import { ShapeOnlyWeights, WeightStore } from "./weights.ts";
import { loadLinearWeight, storedQuant4, type Quant4Settings } from "./bnb4.ts";
import { gemmDtypeOf } from "../engine/quant4.ts";
import { LoraAdapter, type LoraConfig, type LoraPair } from "./lora.ts";
import { FlatParams } from "../engine/flat.ts";
import { ActivationOffload } from "../engine/offload.ts";
import { packWeights } from "../engine/packed.ts";
import { gemmTakes16 } from "../engine/backend.ts";
import { ropeFrequencies, ropeTables as ropeTablesOf } from "./rope.ts";
import type { KVCache } from "./kvcache.ts";
import { fusedPlan, fusedLayers } from "./fused-layers.ts";
import { resolveHubPath } from "../hub/cache.ts";

/** A projection's LoRA dropout: the forward's seed [1] i32 on the device and the module's salt. */
interface Dropout { seed: Tensor; salt: number }

/** One decoder layer's weights (views of the packed buffers where packWeights made them). */
export interface Layer {
  ln1: Tensor;
  ln2: Tensor;
  /** gemma: post-attention and post-feedforward norms (ln2 is then the pre-feedforward norm) */
  postAttn?: Tensor;
  postFf?: Tensor;
  qNorm?: Tensor;
  kNorm?: Tensor;
  /** module name → weight [out, in] (and bias [out]) */
  linears: Map<string, { W: Tensor; b?: Tensor }>;
  /** buffers that hold q/k/v's and gate/up's weights (and biases) side by side (engine/packed.ts; the linears' are views) */
  packs: Tensor[];
}

export interface ForwardOpts {
  /** [B*T] positions; default from the attention mask (cumsum - 1, clamped at 0) or 0..T-1 after the cache */
  positions?: Int32Array;
  /** [B, S] key mask, S = cache length + T (or T); 1 = real token */
  attentionMask?: Int32Array;
  cache?: KVCache;
}

/** What one forward reads besides the weights, on the device (forward() uploads it; a DecodeStep keeps it in fixed buffers). */
export interface ForwardInputs {
  /** [N] i32 token ids */
  ids: Tensor;
  /** cos/sin tables [N, rotaryDim/2] of a rope setting */
  rope(p: RopeParams): { cos: Tensor; sin: Tensor };
  /** key mask [B, S] i32 (null: none) and the window for attention of layers with this sliding window (0 = none) */
  keys(window: number): { mask: Tensor | null; window: number };
  /** key positions attention covers: T without a cache, else the cache's first S */
  S: number;
  /** [1] i32, the seed of this forward's LoRA dropout masks (training with dropout; absent: forwardWith draws one) */
  dropoutSeed?: Tensor;
}

export interface LoadOpts {
  /** keep bf16/f16 weights as stored (default) or convert everything to f32 */
  dtype?: "auto" | "f32";
  adapter?: string;
  /** where `dir` is a hub id: the ref or commit of the cached snapshot (default "main"; hub/cache.ts) */
  revision?: string;
  /**
   * 4-bit base weights (QLoRA): every linear layer's weight quantised at load to bitsandbytes' format (models/bnb4.ts;
   * embeddings, norms, biases and the lm head stay as stored). A folder saved in 4-bit loads as stored whatever this
   * says (these settings then only choose the compute dtype).
   */
  quantization?: Quant4Settings | null;
  /** allocate every weight without reading the folder's safetensors (values undefined): memory planning on the CUDA
   *  emulator without arithmetic (bench/memory-table.ts); only config.json is read */
  shapeOnly?: boolean;
}

export class CausalLM {
  readonly layers: Layer[] = [];
  embed!: Tensor;
  finalNorm!: Tensor;
  lmHead!: Tensor;
  adapter: LoraAdapter | null = null;
  /** LoRA dropout probability in training (applied only while recording gradients) */
  dropout = 0;
  /**
   * recompute each layer in the backward pass instead of keeping its activations: true for every layer, a number for
   * that many of the first layers (the rest keep theirs: less recomputing for more memory); "offload": every layer,
   * with each layer's input kept in host memory until its backward (engine/offload.ts)
   */
  gradientCheckpointing: boolean | number | "offload" = false;
  /** forwards without autograd through a KV cache run the fused layers (models/fused-layers.ts) where they cover the
   *  model; AHA_FUSED_DECODE=0 turns them off (the general block then runs, e.g. to compare) */
  fusedDecode = process.env.AHA_FUSED_DECODE !== "0";
  /** the fused layers make q/k/v's, o's and gate/up's LoRA down-projections in their norm kernels and down's in gluLora
   *  rather than by GEMMs (9 kernels per layer instead of 13); AHA_FOLD_LORA_DOWN=0 turns that off (to compare) */
  foldLoraDown = process.env.AHA_FOLD_LORA_DOWN !== "0";
  dropoutRng: () => number = Math.random;
  /** bf16 weights kept as f16 for the device (Turing has no bf16 tensor cores): tensors converted at load, and their
   *  values below f16's smallest subnormal that became 0 (models/weights.ts; a value beyond f16's range is an error) */
  weightsToF16 = { tensors: 0, flushed: 0 };

  private constructor(readonly config: ModelConfig) {}

  /** Load a local Hugging Face model folder, or a hub id ("Qwen/Qwen2.5-0.5B-Instruct") from the local hub cache. */
  static load(dir: string, opts: LoadOpts = {}): CausalLM {
    dir = resolveHubPath(dir, { revision: opts.revision });
    const cfg = readModelConfig(dir);
    const m = new CausalLM(cfg);
    const ws = opts.shapeOnly ? new ShapeOnlyWeights(cfg) : new WeightStore(dir);
    const keep16 = opts.dtype !== "f32";
    const stored = storedQuant4(cfg.raw, join(dir, "config.json"));
    const q4 = opts.quantization ?? stored;
    if (q4 && opts.dtype === "f32" && !stored) throw new Error(`${dir}: 4-bit weights (load_in_4bit) and f32 weights (dtype f32, full fine-tuning) exclude each other`);
    const { hidden: C, headDim: D, heads: Hq, kvHeads: Hkv, intermediate: I, vocabSize: V } = cfg;
    m.embed = ws.load("model.embed_tokens.weight", [V, C], keep16);
    m.finalNorm = ws.load("model.norm.weight", [C], false);
    if (cfg.tieEmbeddings || !ws.has("lm_head.weight")) {
      if (!cfg.tieEmbeddings) throw new Error(`${dir}: tensor 'lm_head.weight' is missing and tie_word_embeddings is false`);
      m.lmHead = m.embed;
    } else m.lmHead = ws.load("lm_head.weight", [V, C], keep16);
    for (let l = 0; l < cfg.layers; l++) {
      const p = `model.layers.${l}`;
      const lin = new Map<string, { W: Tensor; b?: Tensor }>();
      const addLin = (name: string, out: number, inF: number, bias: boolean) => {
        const full = `${p}.${name}`;
        lin.set(full, { W: loadLinearWeight(ws, `${full}.weight`, [out, inF], keep16, q4), b: bias ? ws.load(`${full}.bias`, [out], false) : undefined });
      };
      if (cfg.fused) addLin("self_attn.qkv_proj", (Hq + 2 * Hkv) * D, C, cfg.attentionBias);
      else {
        addLin("self_attn.q_proj", Hq * D, C, cfg.attentionBias);
        addLin("self_attn.k_proj", Hkv * D, C, cfg.attentionBias);
        addLin("self_attn.v_proj", Hkv * D, C, cfg.attentionBias);
      }
      addLin("self_attn.o_proj", C, Hq * D, cfg.attentionOutBias);
      if (cfg.fused) addLin("mlp.gate_up_proj", 2 * I, C, cfg.mlpBias);
      else {
        addLin("mlp.gate_proj", I, C, cfg.mlpBias);
        addLin("mlp.up_proj", I, C, cfg.mlpBias);
      }
      addLin("mlp.down_proj", C, I, cfg.mlpBias);
      const packs: Tensor[] = [];
      if (!cfg.fused)
        for (const group of [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["mlp.gate_proj", "mlp.up_proj"]]) {
          const names = group.map((n) => `${p}.${n}`), pk = packWeights(names.map((n) => lin.get(n)!.W));
          if (!pk) continue;
          names.forEach((n, i) => lin.set(n, { ...lin.get(n)!, W: pk.views[i] }));
          packs.push(pk.storage);
          const biases = names.map((n) => lin.get(n)!.b);
          const pb = biases.every((b) => b) ? packWeights(biases as Tensor[]) : null;
          if (pb) { names.forEach((n, i) => lin.set(n, { ...lin.get(n)!, b: pb.views[i] })); packs.push(pb.storage); }
        }
      const layer: Layer = {
        ln1: ws.load(`${p}.input_layernorm.weight`, [C], false),
        ln2: ws.load(cfg.sandwichNorms ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`, [C], false),
        linears: lin,
        packs,
      };
      if (cfg.sandwichNorms) {
        layer.postAttn = ws.load(`${p}.post_attention_layernorm.weight`, [C], false);
        layer.postFf = ws.load(`${p}.post_feedforward_layernorm.weight`, [C], false);
      }
      if (cfg.qkNorm) {
        layer.qNorm = ws.load(`${p}.self_attn.q_norm.weight`, [D], false);
        layer.kNorm = ws.load(`${p}.self_attn.k_norm.weight`, [D], false);
      }
      m.layers.push(layer);
    }
    if (opts.adapter) m.adapter = LoraAdapter.load(opts.adapter, m.linearShapes());
    if (ws instanceof WeightStore) m.weightsToF16 = ws.toF16;
    return m;
  }

  /**
   * The dtype a KV cache for this model should hold: the weights' 16-bit type where the backend's GEMMs round
   * activations to it anyway (CUDA's default with bf16 weights, or f16 ones: Turing keeps bf16 weights as f16; keys
   * and values then come from such GEMMs), f32 otherwise (the CPU, exact mode).
   */
  kvDtype(): "f32" | "bf16" | "f16" {
    const dt = this.lowInputs();
    return dt === "bf16" || dt === "f16" ? dt : "f32";
  }

  /** The next forward's dropout seed, [1] i32 on the device, from `dropoutRng`. */
  private drawDropoutSeed(): Tensor {
    return fromHost(Int32Array.of(this.dropoutSeedValue()), [1], "i32", this.embed.backend);
  }
  /** The next dropout seed's value (GraphedMicroBatches writes it into its fixed buffer). */
  dropoutSeedValue(): number {
    return Math.floor(this.dropoutRng() * 2 ** 32) | 0;
  }

  /** The 16-bit type the projections' GEMMs round their inputs to (CUDA's default with 16-bit weights), or null. */
  private lowInputs(): DType | null {
    const W = this.layers[0]?.linears.values().next().value?.W;
    const wdt = W ? gemmDtypeOf(W) : "f32";
    return gemmTakes16(this.embed.backend, wdt) ? wdt : null;
  }

  /** The 16-bit type attention may compute in on tensor cores: the weights' (false for an f32 model). */
  private attention16(): false | "bf16" | "f16" {
    const dt = this.embed.dtype;
    return dt === "bf16" || dt === "f16" ? dt : false;
  }

  /** Every linear module: name → [in, out]. */
  linearShapes(): Map<string, [number, number]> {
    const out = new Map<string, [number, number]>();
    for (const l of this.layers) for (const [name, { W }] of l.linears) out.set(name, [W.shape[1], W.shape[0]]);
    return out;
  }

  /** Attach a fresh LoRA adapter (PEFT init) and return it. */
  addAdapter(config: LoraConfig, rng: () => number): LoraAdapter {
    this.adapter?.dispose();
    this.adapter = LoraAdapter.create(config, this.linearShapes(), rng);
    return this.adapter;
  }

  /** Run fn with the adapter switched off (reference model), restoring it afterwards. */
  withoutAdapter<T>(fn: () => T): T {
    if (!this.adapter) return fn();
    const prev = this.adapter.enabled;
    this.adapter.enabled = false;
    try {
      return fn();
    } finally {
      this.adapter.enabled = prev;
    }
  }

  /**
   * x Wᵀ + b (+ the LoRA branch, its input masked by `drop` while training with dropout: a mask drawn on the device
   * from the forward's seed and this module's salt). into: add the projection to this tensor (no autograd) and return
   * it; x16: x rounded to the weights' 16 bits (rmsNorm16, attention16, glu16).
   */
  private proj(x: Tensor, layer: Layer, name: string, drop: Dropout | null, into?: Tensor, x16?: Tensor | null): Tensor {
    const { W, b } = layer.linears.get(name)!;
    const lora = this.adapter?.get(name);
    const mask = lora && drop ? dropoutMask(drop.seed, drop.salt, x.shape, this.dropout) : null;
    return loraLinear(x, W, b ?? null, lora ? { A: lora.A, B: lora.B, scale: lora.scale, mask } : null, into, x16);
  }

  /**
   * Projections of one input (q/k/v, gate/up), in order: one loraLinearGroup when each has a LoRA pair, their A's are
   * adjacent in the adapter's storage and no dropout mask applies; without LoRA and autograd one linearGroup;
   * otherwise one proj each.
   */
  private projGroup(x: Tensor, layer: Layer, names: string[], drop: ((i: number) => Dropout) | null, x16: Tensor | null = null): Tensor[] {
    const ad = this.adapter;
    if (ad?.enabled && !drop) {
      // the parts of a group are fixed for an adapter: worked out once (parts null: not groupable), and again only
      // if a pair's tensors were replaced
      let cache = this.groupParts.get(ad);
      if (!cache) this.groupParts.set(ad, (cache = new Map()));
      let entry = cache.get(names[0]);
      if (entry?.parts) for (let i = 0; i < entry.parts.length; i++) if (entry.pairs[i].A !== entry.parts[i].A || entry.pairs[i].B !== entry.parts[i].B) { entry = undefined; break; }
      if (!entry) {
        const pairs = names.map((n) => ad.get(n));
        let parts: LoraPart[] | null = pairs.every((l) => l) ? names.map((n, i) => { const { W, b } = layer.linears.get(n)!, l = pairs[i]!; return { W, bias: b ?? null, A: l.A, B: l.B, scale: l.scale }; }) : null;
        if (parts && !groupable(parts, inFeatures(layer, names[0]))) parts = null;
        cache.set(names[0], (entry = { pairs: pairs as LoraPair[], parts }));
      }
      const parts = entry.parts;
      if (parts) return loraLinearGroup(x, parts, x16);
    } else if (!ad?.enabled && !isGradEnabled()) {
      // no LoRA, no autograd (generation, reference log-probs): packed projections of one shape share a GEMM
      let parts = this.baseParts.get(layer)?.get(names[0]);
      if (!parts || parts.some((p, i) => p.W !== layer.linears.get(names[i])!.W)) {
        parts = names.map((n) => { const { W, b } = layer.linears.get(n)!; return { W, bias: b ?? null }; });
        if (!this.baseParts.has(layer)) this.baseParts.set(layer, new Map());
        this.baseParts.get(layer)!.set(names[0], parts);
      }
      return linearGroup(x, parts, x16);
    }
    return names.map((n, i) => this.proj(x, layer, n, drop?.(i) ?? null, undefined, x16));
  }
  private readonly groupParts = new WeakMap<LoraAdapter, Map<string, { pairs: LoraPair[]; parts: LoraPart[] | null }>>();
  private readonly baseParts = new WeakMap<Layer, Map<string, LinearPart[]>>();

  /** Trainable tensors read by layer l (for gradient checkpointing). */
  private layerParameters(l: number): Tensor[] {
    const L = this.layers[l];
    if (this.fullTraining) return [L.ln1, L.ln2, L.postAttn, L.postFf, L.qNorm, L.kNorm, ...[...L.linears.values()].flatMap(({ W, b }) => (b ? [W, b] : [W]))].filter((t): t is Tensor => !!t);
    const out: Tensor[] = [];
    for (const name of L.linears.keys()) {
      const pair = this.adapter?.get(name);
      if (pair) out.push(pair.A, pair.B);
    }
    return out;
  }

  /**
   * Hidden states after the final norm, [B*T, C], for token ids [B*T] (row-major [B, T]).
   * With a cache, keys/values are appended to it and attention covers the cached positions.
   */
  forward(ids: Int32Array, B: number, T: number, opts: ForwardOpts = {}): Tensor {
    const cfg = this.config;
    const N = B * T;
    if (ids.length !== N) throw new Error(`forward: ${ids.length} ids for B=${B}, T=${T}`);
    const cache = opts.cache;
    const past = cache?.length ?? 0;
    const S = past + T;
    let mask = opts.attentionMask;
    if (cache) {
      // the cache keeps the mask of everything written so far
      for (let b = 0; b < B; b++)
        for (let t = 0; t < T; t++) cache.mask[b * cache.capacity + past + t] = mask ? mask[b * S + past + t] : 1;
    }
    const positions = opts.positions ?? defaultPositions(B, T, past, mask, cache);
    const keyMaskHost = cache ? cacheMask(cache, B, S) : mask;
    const keyMask = keyMaskHost ? fromHost(keyMaskHost, [B, S], "i32") : null;
    const inputs: ForwardInputs = { ids: fromHost(ids, [N], "i32"), rope: ropeTables(cfg, positions), keys: (window) => ({ mask: keyMask, window }), S };
    const rows = cache && fromHost(cache.rowsOf(T), [B * T], "i32"); // where each layer's new keys/values go
    const h = this.forwardWith(inputs, B, T, cache && { cache, rows: rows! });
    if (cache) cache.length += T;
    return h;
  }

  /**
   * The forward on device inputs only (no uploads, reads or host work per layer: a DecodeStep captures it in a
   * CUDA graph). `kv` appends each layer's keys/values to a cache at `rows` ([B·T] i32, KVCache.rowsOf); attention then
   * reads the cache's first S positions. Without autograd that runs the fused layers (models/fused-layers.ts) where
   * they cover the model and `fusedDecode` is on.
   */
  forwardWith(inputs: ForwardInputs, B: number, T: number, kv?: { cache: KVCache; rows: Tensor }): Tensor {
    const cfg = this.config;
    const { headDim: D, heads: Hq, kvHeads: Hkv, intermediate: I } = cfg;
    const N = B * T, S = inputs.S, cache = kv?.cache;
    let x = embedding(inputs.ids, this.embed);
    if (cfg.embedScale !== 1) x = scale(x, cfg.embedScale);
    const adapter = this.adapter?.enabled ? this.adapter : null;
    const plan = kv && this.fusedDecode && !isGradEnabled() ? fusedPlan(cfg, this.layers, adapter) : null;
    if (plan)
      return fusedLayers(x, this.layers, plan, this.finalNorm, { cfg, low: this.lowInputs(), B, T, S, cache: kv!.cache, rows: kv!.rows, fold: this.foldLoraDown,
        rope: (l) => inputs.rope(cfg.ropeByLayer[l]), keys: (l) => inputs.keys(cfg.windowByLayer[l]), lowPrecision: this.attention16() });
    // LoRA dropout while training: one device seed per forward, one salt per (layer, module)
    const seed = this.dropout > 0 && isGradEnabled() ? (inputs.dropoutSeed ?? this.drawDropoutSeed()) : null;
    const low = this.lowInputs(); // the projections' inputs get 16-bit copies where their GEMMs take those
    let offload: ActivationOffload | undefined; // offloaded checkpointing's chain of layer inputs (engine/offload.ts)
    for (let l = 0; l < cfg.layers; l++) {
      const L = this.layers[l];
      const p = `model.layers.${l}`;
      const { cos, sin } = inputs.rope(cfg.ropeByLayer[l]);
      const keys = inputs.keys(cfg.windowByLayer[l]);
      // inPlace (no autograd, not under checkpoint, which keeps its input for the recompute): the o and down
      // projections add into the residual stream xin (GEMMs with beta 1) instead of into new tensors and an add
      const block = (xin: Tensor, inPlace = false): Tensor => {
        let module = 0;
        const proj = (h: Tensor, name: string, into?: Tensor, h16?: Tensor | null) =>
          this.proj(h, L, `${p}.${name}`, seed && { seed, salt: l * 256 + module++ }, into, h16);
        const projs = (h: Tensor, names: string[], h16: Tensor | null) => {
          const m0 = module;
          module += names.length;
          return this.projGroup(h, L, names.map((n) => `${p}.${n}`), seed && ((i) => ({ seed, salt: l * 256 + m0 + i })), h16);
        };
        // the inputs of the projections, and their 16-bit copies where the GEMMs take those (low)
        const norm = (x: Tensor, w: Tensor | undefined): [Tensor, Tensor | null] =>
          low ? rmsNorm16(x, w ?? null, cfg.eps, cfg.normOffset, low) : [rmsNorm(x, w ?? null, cfg.eps, cfg.normOffset), null];
        let x = xin;
        const [h, h16] = norm(x, L.ln1);
        let q: Tensor, k: Tensor, v: Tensor;
        if (cfg.fused) {
          const qkv = proj(h, "self_attn.qkv_proj", undefined, h16);
          q = sliceCols(qkv, 0, Hq * D);
          k = sliceCols(qkv, Hq * D, Hkv * D);
          v = sliceCols(qkv, (Hq + Hkv) * D, Hkv * D);
        } else {
          [q, k, v] = projs(h, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], h16);
        }
        h16?.dispose();
        if (L.qNorm) {
          q = rmsNorm(reshape(q, [N * Hq, D]), L.qNorm, cfg.eps, cfg.normOffset);
          k = rmsNorm(reshape(k, [N * Hkv, D]), L.kNorm!, cfg.eps, cfg.normOffset);
        }
        [q, k] = ropePair(reshape(q, [N, Hq, D]), reshape(k, [N, Hkv, D]), cos, sin, cfg.rotaryDim);
        v = reshape(v, [N, Hkv, D]);
        const aOpts = { B, T, Hq, Hkv, D, scale: cfg.attnScale, window: keys.window, softcap: cfg.attnSoftcap, keyMask: keys.mask,
          lowPrecision: this.attention16() };
        const attend = (k: Tensor, v: Tensor, opts: AttentionOpts): [Tensor, Tensor | null] =>
          low ? attention16(q, k, v, opts, low) : [attention(q, k, v, opts), null];
        let a: Tensor, a16: Tensor | null;
        if (cache) {
          cache.scatter(l, k, v, kv.rows);
          [a, a16] = attend(cache.k[l], cache.v[l], { ...aOpts, S, kvStrideB: cache.strideB });
        } else [a, a16] = attend(k, v, aOpts);
        if (inPlace && !L.postAttn) proj(reshape(a, [N, Hq * D]), "self_attn.o_proj", x, a16);
        else {
          let o = proj(reshape(a, [N, Hq * D]), "self_attn.o_proj", undefined, a16);
          if (L.postAttn) o = rmsNorm(o, L.postAttn, cfg.eps, cfg.normOffset);
          x = add(x, o);
        }
        a16?.dispose();
        const [h2, h216] = norm(x, L.ln2);
        let g: Tensor, u: Tensor;
        if (cfg.fused) {
          const gu = proj(h2, "mlp.gate_up_proj", undefined, h216);
          g = sliceCols(gu, 0, I);
          u = sliceCols(gu, I, I);
        } else {
          [g, u] = projs(h2, ["mlp.gate_proj", "mlp.up_proj"], h216);
        }
        h216?.dispose();
        const [gl, gl16] = low ? glu16(g, u, cfg.act, low) : [glu(g, u, cfg.act), null];
        let m = proj(gl, "mlp.down_proj", inPlace && !L.postFf ? x : undefined, gl16);
        gl16?.dispose();
        if (inPlace && !L.postFf) return m;
        if (L.postFf) m = rmsNorm(m, L.postFf, cfg.eps, cfg.normOffset);
        return add(x, m);
      };
      // (without autograd checkpoint would only run the block: run it directly, in place)
      const gc = this.gradientCheckpointing, ckpt = gc === true || gc === "offload" || l < Number(gc);
      if (gc === "offload" && !cache && isGradEnabled()) offload ??= new ActivationOffload(x.backend);
      x = ckpt && !cache && isGradEnabled() ? checkpoint(block, x, this.layerParameters(l), offload && { chain: offload, last: l === cfg.layers - 1 })
        : block(x, !isGradEnabled());
    }
    return rmsNorm(x, this.finalNorm, cfg.eps, cfg.normOffset);
  }

  /** Full logits [N, V] for hidden states [N, C] (soft-capped if the model says so). */
  logits(h: Tensor): Tensor {
    const z = matmul(h, this.lmHead, { transB: true });
    const cap = this.config.finalSoftcap;
    if (!(cap > 0)) return z;
    const capped = empty(z.shape, "f32", z.backend); // on the device; no gradient flows through (training uses tokenLogprobs)
    z.backend.k.softcap(capped.buf, z.buf, cap, z.numel);
    return capped;
  }

  /** log p(targets) under softmax(logits / temperature), fused and chunked; targets i32 [N]. */
  tokenLogprobs(h: Tensor, targets: Int32Array, temperature = 1): TokenLogprobs {
    return tokenLogprobs(h, this.lmHead, fromHost(targets, [targets.length], "i32"), temperature, this.config.finalSoftcap);
  }

  /**
   * Full fine-tuning: every weight becomes trainable (weights must be f32: load with dtype "f32"). The weights move
   * into one flat buffer (engine/flat.ts) so that AdamW and the gradient norm are one kernel each; the move copies
   * on the device, and both copies exist until it ends.
   */
  trainAll(): void {
    const ws = this.allWeights();
    for (const t of ws)
      if (t.dtype !== "f32") throw new Error(`full fine-tuning needs f32 weights; ${t.describe()} is ${t.dtype} (load with dtype: "f32")`);
    if (!ws[0].flat) {
      this.weightStorage = new FlatParams(ws[0].backend, ws.map((t) => ({ shape: t.shape, name: t.name })), "weights");
      const moved = new Map<Tensor, Tensor>();
      ws.forEach((t, i) => {
        const n = this.weightStorage!.members[i];
        t.backend.k.copy2d(n.buf, t.buf, 1, t.numel, 0, 0, false);
        moved.set(t, n);
        t.dispose();
      });
      const mv = <T extends Tensor | undefined>(t: T): T => (t ? moved.get(t)! : t) as T;
      this.embed = mv(this.embed);
      this.lmHead = mv(this.lmHead);
      this.finalNorm = mv(this.finalNorm);
      for (const l of this.layers) {
        l.ln1 = mv(l.ln1); l.ln2 = mv(l.ln2); l.postAttn = mv(l.postAttn); l.postFf = mv(l.postFf); l.qNorm = mv(l.qNorm); l.kNorm = mv(l.kNorm);
        for (const [name, { W, b }] of l.linears) l.linears.set(name, { W: mv(W), b: mv(b) });
        for (const s of l.packs) s.dispose(); // their views were moved
        l.packs = [];
      }
    }
    for (const t of this.allWeights()) t.requiresGrad = true;
    this.fullTraining = true;
  }

  /** the base weights' flat storage under full fine-tuning */
  private weightStorage: FlatParams | null = null;

  private fullTraining = false;

  get isFullFinetune(): boolean {
    return this.fullTraining;
  }

  /** Every base weight, each once (tied embeddings counted once). */
  allWeights(): Tensor[] {
    const out = new Set<Tensor>([this.embed, this.finalNorm, this.lmHead]);
    for (const l of this.layers) {
      for (const t of [l.ln1, l.ln2, l.postAttn, l.postFf, l.qNorm, l.kNorm]) if (t) out.add(t);
      for (const { W, b } of l.linears.values()) { out.add(W); if (b) out.add(b); }
    }
    return [...out];
  }

  /** Trainable parameters: every weight under full fine-tuning, else the adapter's. */
  parameters(): Tensor[] {
    if (this.fullTraining) return this.allWeights();
    return this.adapter?.parameters() ?? [];
  }
}

export function defaultPositions(B: number, T: number, past: number, mask: Int32Array | undefined, cache?: KVCache): Int32Array {
  const pos = new Int32Array(B * T);
  const S = past + T;
  for (let b = 0; b < B; b++) {
    if (!mask && !cache) { for (let t = 0; t < T; t++) pos[b * T + t] = t; continue; }
    // position = number of real tokens before this one (cumsum(mask) - 1, clamped at 0)
    let count = 0;
    for (let j = 0; j < S; j++) {
      const m = cache ? cache.mask[b * cache.capacity + j] : mask![b * S + j];
      if (j >= past) pos[b * T + (j - past)] = Math.max(0, count + m - 1);
      count += m;
    }
  }
  return pos;
}

/**
 * Rope cos/sin tables [N, rotaryDim/2] for these positions, computed and uploaded once per distinct rope setting
 * (every layer has its own RopeParams object; Gemma 3 has two settings), not once per layer.
 */
function ropeTables(cfg: ModelConfig, positions: Int32Array): ForwardInputs["rope"] {
  const tables = new Map<string, { cos: Tensor; sin: Tensor }>();
  return (p: RopeParams) => {
    const key = JSON.stringify(p);
    let t = tables.get(key);
    if (!t) {
      const { cos, sin } = ropeTablesHost(cfg, p, positions);
      t = { cos: fromHost(cos, [positions.length, cfg.rotaryDim / 2]), sin: fromHost(sin, [positions.length, cfg.rotaryDim / 2]) };
      tables.set(key, t);
    }
    return t;
  };
}

/** Host cos/sin tables [positions.length, rotaryDim/2] of one rope setting (dynamic scaling reads the largest position). */
function ropeTablesHost(cfg: ModelConfig, p: RopeParams, positions: Int32Array): { cos: Float32Array; sin: Float32Array } {
  let maxPos = 0;
  for (const x of positions) if (x > maxPos) maxPos = x;
  return ropeTablesOf(ropeFrequencies(p, cfg.rotaryDim, cfg.maxPositions, maxPos + 1), positions);
}

/**
 * Fixed cos/sin buffers [N, rotaryDim/2], one pair per distinct rope setting, rewritten for each step's positions
 * before the step runs: the rope inputs of a replayed step (DecodeStep, GraphedMicroBatches).
 */
export class RopeBuffers {
  private readonly tables = new Map<string, { p: RopeParams; cos: Tensor; sin: Tensor }>();

  constructor(private readonly cfg: ModelConfig, N: number, be: Backend) {
    for (const p of cfg.ropeByLayer) {
      const key = JSON.stringify(p);
      if (!this.tables.has(key)) this.tables.set(key, { p, cos: empty([N, cfg.rotaryDim / 2], "f32", be).keep(), sin: empty([N, cfg.rotaryDim / 2], "f32", be).keep() });
    }
  }

  /** Upload the tables of these positions [N]. */
  write(positions: Int32Array): void {
    for (const t of this.tables.values()) {
      const { cos, sin } = ropeTablesHost(this.cfg, t.p, positions);
      t.cos.backend.write(t.cos.buf, cos);
      t.sin.backend.write(t.sin.buf, sin);
    }
  }

  /** The buffers of a rope setting (as ForwardInputs.rope). */
  get(p: RopeParams): { cos: Tensor; sin: Tensor } {
    return this.tables.get(JSON.stringify(p))!;
  }

  dispose(): void {
    for (const t of this.tables.values()) { t.cos.dispose(); t.sin.dispose(); }
  }
}

/** in-features of a layer's linear module */
function inFeatures(layer: Layer, name: string): number {
  return layer.linears.get(name)!.W.shape[1];
}

function cacheMask(cache: KVCache, B: number, S: number): Int32Array {
  const out = new Int32Array(B * S);
  for (let b = 0; b < B; b++) out.set(cache.mask.subarray(b * cache.capacity, b * cache.capacity + S), b * S);
  return out;
}

