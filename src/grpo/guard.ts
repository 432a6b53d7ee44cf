// The non-finite guard: a step whose reward totals, advantages, loss or gradient norm is not finite makes no
// optimiser update; it is reported (console and metrics.jsonl's `nonfinite`), and after max_nonfinite_steps such
// steps in a row the run stops with an error naming the first bad quantity and where it came from.
// Is: checks of host-side numbers the trainer already has (reward totals, advantages, the loss sum, the gradient
// norm); the gradient's parameter is found by reading gradients only when the norm is bad.
// Is not: a weight check (the writers refuse non-finite weights on save, the loaders on load).
import type { Tensor } from "../engine/index.ts";
import { firstNonFinite } from "../engine/finite.ts";
import type { Rollout } from "./rollout.ts";

export interface NonFinite {
  quantity: "reward" | "advantage" | "loss" | "gradient";
  /** what was not finite and where it came from */
  detail: string;
}

const list = (xs: ArrayLike<number>) => Array.from(xs, (x) => String(x)).join(", ");

/** The first non-finite reward total (of a sample not skipped) or advantage of a rollout, or null. */
export function checkRollout(ro: Rollout, advantages: Float32Array, groupSize: number, scale: string): NonFinite | null {
  const r = ro.rewards;
  const i = r.total.findIndex((t, k) => !r.skipped[k] && !r.allNull.includes(k) && !Number.isFinite(t));
  if (i >= 0) {
    const parts = r.names.map((n) => `${n} = ${r.byName[n][i]}`).join(", ");
    return { quantity: "reward", detail: `the reward of sample ${i} is ${r.total[i]} (weighted sum of ${parts})` };
  }
  const a = firstNonFinite(advantages);
  if (a >= 0) {
    const g = Math.floor(a / groupSize);
    const rewards = r.total.slice(g * groupSize, (g + 1) * groupSize);
    return { quantity: "advantage", detail: `the advantage of sample ${a} is ${advantages[a]} (its group's rewards: ${list(rewards)}; scale_rewards ${scale}): rewards this large overflow the group statistics` };
  }
  return null;
}

/** A non-finite loss or gradient norm after the backward pass, or null. */
export function checkStep(loss: number, gradNorm: number, params: Tensor[]): NonFinite | null {
  if (!Number.isFinite(loss)) return { quantity: "loss", detail: `the loss is ${loss} with finite rewards and advantages: from the model's log-probabilities (weights or activations)` };
  if (Number.isFinite(gradNorm)) return null;
  const p = params.find((t) => t.grad && firstNonFinite(t.grad.f32()) >= 0);
  return { quantity: "gradient", detail: `the gradient norm is ${gradNorm}${p ? `; the first non-finite gradient is that of ${p.name ?? p.describe()}` : ""}` };
}

/** Counts non-finite steps in a row; at the limit, `stopped` holds the error to stop the run with. */
export class NonFiniteGuard {
  private streak: { step: number; f: NonFinite }[] = [];
  stopped: Error | null = null;

  constructor(private readonly limit: number) {}

  /** Record a step's finding (null: finite). Returns the console line for a skipped step. */
  record(step: number, f: NonFinite | null): string | null {
    if (!f) {
      this.streak = [];
      return null;
    }
    this.streak.push({ step, f });
    if (this.streak.length >= this.limit) {
      const first = this.streak[0];
      this.stopped = new Error(`training stopped: ${this.streak.length} steps in a row were not finite (max_nonfinite_steps ${this.limit}); ` +
        `the first, step ${first.step}: ${first.f.quantity} not finite: ${first.f.detail}`);
    }
    return `step ${step}: skipped (no optimiser update): ${f.quantity} not finite: ${f.detail}`;
  }
}
