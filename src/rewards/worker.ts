// The worker-thread side of the reward pool (pool.ts): loads a reward function once per thread — an export of a
// user's module, or the source of a self-contained function (movable.ts) compiled again here — and calls it on the
// batch slice it is sent. What it returns goes back as is; the main thread checks it.
// Is not: a sandbox. A module's top-level state is per thread.
import { importUserModule } from "../modules/user-module.ts";
import { isNamedReward, type RewardFunc } from "./types.ts";
import type { WorkerTask, WorkerRef } from "./pool.ts";

const loaded = new Map<string, Promise<RewardFunc>>();

/** esbuild's keepNames helper, which compiled TypeScript functions may call. */
const __name = <T extends object>(f: T, value: string): T => Object.defineProperty(f, "name", { value, configurable: true });

async function load(ref: WorkerRef): Promise<RewardFunc> {
  if ("code" in ref) return new Function("__name", `"use strict"; return (${ref.code});`)(__name) as RewardFunc;
  const v = (await importUserModule(ref.module, `reward "${ref.module}#${ref.export}"`))[ref.export];
  if (typeof v === "function") return v as RewardFunc;
  if (isNamedReward(v)) return v.fn;
  throw new Error(`${ref.module}: export "${ref.export}" is not a reward function`);
}

export default async function runReward(task: WorkerTask): Promise<unknown> {
  const key = "code" in task.ref ? task.ref.code : `${task.ref.module}#${task.ref.export}`;
  let fn = loaded.get(key);
  if (!fn) loaded.set(key, (fn = load(task.ref)));
  const reward = await fn; // loading (once per thread) counts as waiting for a worker: up to 10 × the timeout
  task.started[0] = Date.now(); // the deadline runs from here
  return reward(task.args);
}
