// The KL reference and TR-DPO's refresh of it (sync_ref_model): every ref_model_sync_steps steps the reference
// becomes alpha · policy + (1 − alpha) · reference, weight by weight, on the device.
// Under full fine-tuning the reference is a frozen copy of the starting weights (a second model), mixed in place.
// Under LoRA the reference is the base model with the adapter off until the first sync; from then on it is a kept
// reference adapter (its own A and B per module, starting from "A as the policy's at the start, B = 0", which is
// exactly the adapter off), swapped into the model's adapter storage for the reference pass and swapped back.
// Is not: a mix of the LoRA product B·A (each factor is mixed; TRL refuses sync_ref_model under PEFT altogether).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { empty, type Tensor } from "../engine/index.ts";
import { CausalLM } from "../models/model.ts";
import { readSafetensors, writeSafetensors, type StWriteTensor } from "../models/safetensors.ts";

const FILE = "ref_model.safetensors";

export class Reference {
  /** LoRA: the reference adapter's tensors, parallel to the policy's parameters(); null until the first sync */
  private refAdapter: Tensor[] | null = null;
  /** LoRA: the policy's parameters at the start, with every B zeroed (the adapter off), the first mix's other side */
  private start: Float32Array[] | null = null;

  /** refModel: under full fine-tuning, the frozen starting weights (else null: LoRA). */
  constructor(private readonly model: CausalLM, readonly refModel: CausalLM | null, keepStart: boolean) {
    if (!refModel && keepStart) {
      const isB = this.bFlags();
      this.start = model.parameters().map((p, i) => (isB[i] ? new Float32Array(p.numel) : p.f32()));
    }
  }

  /** Run fn on the reference: the frozen model, the model with the reference adapter swapped in, or the adapter off. */
  run<T>(fn: (m: CausalLM) => T): T {
    if (this.refModel) return fn(this.refModel);
    if (!this.refAdapter) return this.model.withoutAdapter(() => fn(this.model));
    const params = this.model.parameters();
    this.swap(params, this.refAdapter);
    try {
      return fn(this.model);
    } finally {
      this.swap(params, this.refAdapter);
    }
  }

  /** reference ← alpha · policy + (1 − alpha) · reference. */
  sync(alpha: number): void {
    const pairs = this.pairs();
    for (const [p, r] of pairs) {
      const k = p.backend.k, tmp = empty(p.shape, "f32", p.backend);
      k.scale(tmp.buf, p.buf, alpha, p.numel);
      k.scale(r.buf, r.buf, 1 - alpha, r.numel);
      k.binary(r.buf, r.buf, tmp.buf, r.numel, r.numel, 0);
      tmp.dispose();
    }
  }

  /** Save the reference's weights into a checkpoint folder (nothing while it is still the starting point). */
  save(dir: string): void {
    const ts = this.refModel ? this.refModel.allWeights() : this.refAdapter;
    if (!ts) return;
    const names = this.refModel ? ts.map((t) => t.name!) : this.model.parameters().map((p) => p.name!);
    const w: Record<string, StWriteTensor> = {};
    ts.forEach((t, i) => { w[names[i]] = { dtype: "F32", shape: t.shape, data: t.f32() }; });
    writeSafetensors(join(dir, FILE), w);
  }

  /** Restore what save wrote (a checkpoint without it: the reference was still the starting point). */
  load(dir: string): void {
    const path = join(dir, FILE);
    if (!existsSync(path)) return;
    const st = readSafetensors(path);
    if (!this.refModel) this.adapterCopies();
    const ts = this.refModel ? this.refModel.allWeights() : this.refAdapter!;
    const names = this.refModel ? ts.map((t) => t.name!) : this.model.parameters().map((p) => p.name!);
    ts.forEach((t, i) => {
      const data = st.float32(names[i]);
      if (data.length !== t.numel) throw new Error(`${path}: ${names[i]} has ${data.length} values, the reference needs ${t.numel}`);
      t.backend.write(t.buf, data);
    });
  }

  dispose(): void {
    for (const t of this.refAdapter ?? []) t.dispose();
    this.refAdapter = null;
  }

  /** (policy weight, reference weight) pairs to mix; under LoRA the reference adapter is made on first use */
  private pairs(): [Tensor, Tensor][] {
    if (this.refModel) {
      const ref = this.refModel.allWeights();
      return this.model.allWeights().map((p, i) => [p, ref[i]]);
    }
    this.adapterCopies();
    const params = this.model.parameters();
    return params.map((p, i) => [p, this.refAdapter![i]]);
  }

  private adapterCopies(): void {
    if (this.refAdapter) return;
    const params = this.model.parameters();
    if (!this.start) throw new Error("sync_ref_model: the reference adapter's starting point was not kept");
    this.refAdapter = params.map((p, i) => {
      const t = empty(p.shape, "f32", p.backend).keep();
      p.backend.write(t.buf, this.start![i]);
      return t;
    });
    this.start = null;
  }

  /** which of the policy's parameters are LoRA B matrices */
  private bFlags(): boolean[] {
    const bs = new Set([...(this.model.adapter?.modules.values() ?? [])].map((m) => m.B));
    return this.model.parameters().map((p) => bs.has(p));
  }

  /** exchange the contents of a and b, tensor by tensor (device copies) */
  private swap(a: Tensor[], b: Tensor[]): void {
    a.forEach((x, i) => {
      const y = b[i], k = x.backend.k, tmp = empty(x.shape, "f32", x.backend);
      k.copy2d(tmp.buf, x.buf, 1, x.numel, 0, 0, false);
      k.copy2d(x.buf, y.buf, 1, x.numel, 0, 0, false);
      k.copy2d(y.buf, tmp.buf, 1, x.numel, 0, 0, false);
      tmp.dispose();
    });
  }
}
