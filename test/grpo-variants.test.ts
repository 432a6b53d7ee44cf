// The GRPO family's loss against TRL: every case of test/fixtures/grpo-variants/cases.json (seeded inputs, TRL's loss
// and d loss / d logp transcribed from TRL f2cd577 to numpy; its README gives the formulas) runs through the trainer's
// path (lossWeights + the grpoLoss kernel) on every available device, and must match the loss and the per-token
// gradient the fused lm-head backward receives. Cases are read from the file, never counted here.
// luspo differs from TRL on purpose where TRL's loss is a [B, T] mean over padding (β > 0, an entropy mask, token
// level; see src/grpo/loss.ts): those cases are checked against a loop transcription of our formula below (its
// gradient by central differences), and must have no gradient at padded positions, where TRL's has one.
// Then, per variant, the LoRA gradients of a fixture model (fused lm-head backward of the kernel's d loss / d logp)
// against central differences of the loss along random directions of the LoRA weights (CPU: f32 model, f64 sums).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, fixtureModels } from "./fixtures.ts";
import { availableDevices, useDevice } from "./devices.ts";
import { backward, fromHost, grpoLoss, noGrad, scope } from "../src/engine/index.ts";
import { batchLoss, kernelParams, lossWeights, type LossParams, type LossType } from "../src/grpo/loss.ts";
import { CausalLM } from "../src/models/model.ts";
import { readSafetensors } from "../src/models/safetensors.ts";
import { Xoshiro } from "../src/engine/rng.ts";

interface Case {
  name: string; note: string; extra: boolean; B: number; T: number;
  cfg: Record<string, number | string | boolean | null>;
  inputs: Record<string, number[][] | number[] | null>;
  expected: { loss: number; grad: number[][] };
}

const file = join(FIXTURES, "grpo-variants", "cases.json");
const cases: Case[] = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")).cases : [];

/** Why a case is not run (vespo and vLLM's importance-sampling inputs are not part of aha), or null. */
function skipReason(c: Case): string | null {
  if (c.cfg.loss_type === "vespo") return "vespo is not implemented (an extra of the fixtures, not in the issue's list)";
  if (c.inputs.importance_sampling_ratio || c.inputs.sampling_logp) return "vLLM's importance-sampling correction: aha samples from the weights it trains, there is no second engine to correct for";
  return null;
}

/** luspo cases where TRL's per-token loss is [B, T] and its mean runs over padding: ours differs there by choice. */
const luspoOurs = (c: Case) => c.cfg.loss_type === "luspo" && (c.cfg.beta !== 0 || (c.cfg.top_entropy_quantile as number) < 1 || c.cfg.importance_sampling_level === "token");

function params(c: Case): LossParams {
  const g = c.cfg;
  return {
    lossType: g.loss_type as LossType, importanceSamplingLevel: g.importance_sampling_level as "token" | "sequence",
    epsilon: g.epsilon as number, epsilonHigh: (g.epsilon_high ?? g.epsilon) as number, delta: (g.delta ?? 0) as number, beta: g.beta as number,
    useBiasCorrectionKl: g.use_bias_correction_kl as boolean, sapoTemperaturePos: g.sapo_temperature_pos as number, sapoTemperatureNeg: g.sapo_temperature_neg as number,
    topEntropyQuantile: g.top_entropy_quantile as number, offPolicyMaskThreshold: g.off_policy_mask_threshold as number | null,
    temperature: 1, maxCompletionLength: g.max_completion_length as number, numItemsInBatch: (g.num_items_in_batch ?? undefined) as number | undefined,
    accumulation: g.gradient_accumulation_steps as number,
  };
}

const flat = (x: number[][]) => Float32Array.from(x.flat());

/** Our loss and d loss / d logp for a case, through the trainer's weights and the loss kernel on the current device. */
function ours(c: Case): { loss: number; grad: Float32Array } {
  const { B, T } = c, N = B * T, inp = c.inputs, p = params(c);
  const mask = flat(inp.completion_mask as number[][]);
  return scope(() => {
    const logp = fromHost(flat(inp.logp as number[][]), [N]);
    logp.requiresGrad = true;
    const old = inp.old_logp ? fromHost(flat(inp.old_logp as number[][]), [N]) : logp;
    const ref = inp.ref_logp ? fromHost(flat(inp.ref_logp as number[][]), [N]) : old;
    const adv = fromHost(Float32Array.from({ length: N }, (_, i) => (inp.advantages as number[])[Math.floor(i / T)]), [N]);
    const w = fromHost(lossWeights(mask, B, T, p), [N]);
    const entropy = inp.entropy ? fromHost(flat(inp.entropy as number[][]), [N]) : null;
    const loss = grpoLoss(logp, old, ref, adv, w, kernelParams(p, !!inp.ref_logp), false, { rows: B, entropy });
    backward(loss);
    return { loss: loss.item(), grad: logp.grad!.f32() };
  });
}

/**
 * Our luspo, transcribed as a loop in double: L = (1/(B·GA)) Σ_b Σ_t m·(ℓ·M_b·E + β·K), ℓ the clipped-ratio term (per
 * token or per sequence), M the off-policy mask, E the entropy mask (torch.quantile's linear quantile over the valid
 * tokens), K the k3 KL (× ratio when bias-corrected). Independent of the kernel (nothing imported from src).
 */
function luspoReference(c: Case, logp: number[]): number {
  const { B, T } = c, g = c.cfg, inp = c.inputs, m = (inp.completion_mask as number[][]).flat();
  const old = inp.old_logp ? (inp.old_logp as number[][]).flat() : (inp.logp as number[][]).flat(); // detached: fixed
  const ref = inp.ref_logp ? (inp.ref_logp as number[][]).flat() : null, adv = inp.advantages as number[];
  const eLo = g.epsilon as number, eHi = (g.epsilon_high ?? g.epsilon) as number, delta = g.delta as number | null, beta = g.beta as number;
  const q = g.top_entropy_quantile as number;
  let thr = -Infinity;
  if (q < 1) {
    const ent = (inp.entropy as number[][]).flat(), v = ent.filter((_, i) => m[i]).sort((a, b) => a - b);
    const pos = (1 - q) * (v.length - 1), lo = Math.floor(pos), f = pos - lo;
    thr = f === 0 ? v[lo] : v[lo] + (v[lo + 1] - v[lo]) * f;
  }
  const E = (i: number) => (q < 1 ? ((inp.entropy as number[][]).flat()[i] >= thr ? 1 : 0) : 1);
  let L = 0;
  for (let b = 0; b < B; b++) {
    let n = 0, s = 0, sDetached = 0;
    for (let t = 0; t < T; t++) if (m[b * T + t]) { n++; s += logp[b * T + t] - old[b * T + t]; sDetached += (inp.logp as number[][])[b][t] - old[b * T + t]; }
    const A = adv[b];
    const M = g.off_policy_mask_threshold === null || A >= 0 || -sDetached / Math.max(n, 1) <= (g.off_policy_mask_threshold as number) ? 1 : 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!m[i]) continue;
      const r = g.importance_sampling_level === "sequence" ? Math.exp(s / Math.max(n, 1)) : Math.exp(logp[i] - old[i]);
      const c1 = delta !== null ? Math.min(r, delta) : r, c2 = Math.min(Math.max(r, 1 - eLo), 1 + eHi);
      let term = -Math.min(c1 * A, c2 * A) * M * E(i);
      if (beta !== 0) {
        const x = ref![i] - logp[i], k = Math.exp(x) - x - 1;
        term += beta * (g.use_bias_correction_kl ? k * r : k);
      }
      L += term;
    }
  }
  return L / (B * (g.gradient_accumulation_steps as number));
}

test("grpo-variants fixture: the cases file is there and has cases", () => {
  assert.ok(cases.length > 0, `no cases in ${file}`);
  for (const t of ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo"]) assert.ok(cases.some((c) => c.cfg.loss_type === t), `no ${t} case`);
});

for (const device of availableDevices()) for (const c of cases) {
  const skip = skipReason(c);
  test(`${device}: ${c.name} (${c.note})`, { skip: skip ?? false }, async () => {
    await useDevice(device);
    const got = ours(c);
    const N = c.B * c.T;
    if (!luspoOurs(c)) {
      const want = c.expected.loss, g = c.expected.grad.flat();
      assert.ok(Math.abs(got.loss - want) <= 1e-5 * Math.max(1, Math.abs(want)), `loss ${got.loss} vs TRL ${want}`);
      for (let i = 0; i < N; i++) assert.ok(Math.abs(got.grad[i] - g[i]) <= 1e-6 + 1e-5 * Math.abs(g[i]), `d loss / d logp[${i}]: ${got.grad[i]} vs TRL ${g[i]}`);
      return;
    }
    // luspo where TRL's mean runs over padding: our formula, its gradient by central differences (double)
    const lp = (c.inputs.logp as number[][]).flat();
    const want = luspoReference(c, lp);
    assert.ok(Math.abs(got.loss - want) <= 1e-5 * Math.max(1, Math.abs(want)), `loss ${got.loss} vs our luspo ${want}`);
    const h = 1e-6;
    for (let i = 0; i < N; i++) {
      const up = lp.slice(), dn = lp.slice();
      up[i] += h;
      dn[i] -= h;
      const fd = (luspoReference(c, up) - luspoReference(c, dn)) / (2 * h);
      assert.ok(Math.abs(got.grad[i] - fd) <= 1e-5 + 1e-4 * Math.abs(fd), `d loss / d logp[${i}]: ${got.grad[i]} vs central difference ${fd}`);
    }
    const mask = (c.inputs.completion_mask as number[][]).flat(), trl = c.expected.grad.flat();
    for (let i = 0; i < N; i++) if (!mask[i]) assert.equal(got.grad[i], 0, `padded position ${i} has a gradient`);
    assert.ok(mask.some((m, i) => !m && trl[i] !== 0) || c.cfg.importance_sampling_level === "sequence", "TRL's gradient at padding: the case shows the difference");
  });
}

const fdModel = fixtureModels().find((d) => d.endsWith("llama") && existsSync(join(d, "reference_grpo.safetensors")));
const fdVariants: [string, Partial<LossParams>][] = [
  ["grpo, token level, delta, KL", { lossType: "grpo", delta: 1.5 }],
  ["GSPO (grpo, sequence level), KL", { lossType: "grpo", importanceSamplingLevel: "sequence" }],
  // cispo's gradient holds sg(min(r, cap)) fixed while its loss value moves with it: a cap below every ratio here
  // keeps that factor constant, so the loss's central differences are the gradient's
  ["cispo (cap 0.2, below every ratio), KL", { lossType: "cispo", epsilonHigh: 0.2 }],
  ["sapo, KL", { lossType: "sapo" }],
  ["luspo (sequence level), KL", { lossType: "luspo", importanceSamplingLevel: "sequence" }],
  ["dapo, entropy mask 0.5, off-policy mask, bias-corrected KL", { lossType: "dapo", topEntropyQuantile: 0.5, offPolicyMaskThreshold: 0.01, useBiasCorrectionKl: true }],
];
// the CPU only (the emulated CUDA suite runs the cases above on its device; the chain to the LoRA weights is shared)
const fdSkip = !fdModel ? "no llama fixture with reference_grpo" : !availableDevices().includes("cpu") ? "CPU only" : false;
for (const [name, v] of fdVariants) test(`cpu: LoRA gradients against central differences, ${name}`, { skip: fdSkip }, async () => {
  await useDevice("cpu");
  const ref = readSafetensors(join(fdModel!, "reference_grpo.safetensors"));
  const model = CausalLM.load(fdModel!, { adapter: join(fdModel!, "adapter") });
  const [B, P] = ref.info("prompt_ids").shape, T = ref.info("completion_ids").shape[1];
  const batch = { promptIds: ref.int32("prompt_ids"), completionIds: ref.int32("completion_ids"), completionMask: ref.float32("completion_mask"), B, P, T };
  const p: LossParams = { lossType: "grpo", epsilon: 0.2, epsilonHigh: 0.28, beta: 0.04, temperature: 0.7, maxCompletionLength: T, ...v };
  const old = ref.float32("old_logps"), refLp = ref.float32("ref_logps"), adv = ref.float32("advantages");
  const params = model.parameters();
  const lossAt = () => noGrad(() => scope(() => batchLoss(model, batch, old, refLp, adv, p).loss.item()));
  scope(() => backward(batchLoss(model, batch, old, refLp, adv, p).loss));
  const grads = params.map((q) => q.grad!.f32());
  const rng = new Xoshiro(11);
  for (let dir = 0; dir < 2; dir++) {
    const vs = params.map((q) => Float32Array.from({ length: q.numel }, () => rng.next() * 2 - 1));
    const norm = Math.sqrt(vs.reduce((a, x) => a + x.reduce((b, y) => b + y * y, 0), 0));
    const base = params.map((q) => q.f32());
    const at = (h: number) => {
      params.forEach((q, i) => q.backend.write(q.buf, base[i].map((x, j) => x + (h * vs[i][j]) / norm)));
      return lossAt();
    };
    const h = 1e-3, fd = (at(h) - at(-h)) / (2 * h);
    params.forEach((q, i) => q.backend.write(q.buf, base[i]));
    const gv = grads.reduce((a, g, i) => a + g.reduce((b, x, j) => b + (x * vs[i][j]) / norm, 0), 0);
    assert.ok(Math.abs(gv) > 1e-4, `direction ${dir}: a gradient to compare (${gv})`);
    assert.ok(Math.abs(fd - gv) <= 1e-2 * Math.abs(gv) + 2e-4, `direction ${dir}: gradient · v ${gv} vs central difference ${fd}`);
  }
});
