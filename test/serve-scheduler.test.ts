// Continuous batching (src/serve/scheduler.ts) against one-request-at-a-time generation: requests that join a
// running batch at different steps, with different prompt lengths, n, seeds, temperatures and lengths, get exactly
// the tokens generate() gives each of them alone, on every fixture model (sliding windows and every rope included),
// on every device the suite has (the CUDA half runs it on the emulator).
import { test } from "node:test";
import assert from "node:assert/strict";
import { basename } from "node:path";
import { fixtureModels } from "./fixtures.ts";
import { CausalLM } from "../src/models/model.ts";
import { generate } from "../src/generate/generate.ts";
import { Scheduler } from "../src/serve/scheduler.ts";
import { availableDevices, useDevice } from "./devices.ts";

// on the GPU (or its emulator, slow) two of the models: the first and the middle one of the sorted list
const models = (device: string) => (device === "cpu" ? fixtureModels() : [fixtureModels()[0], fixtureModels()[fixtureModels().length >> 1]]);
for (const device of availableDevices()) for (const dir of models(device)) {
  test(`scheduler (${device} ${basename(dir)}): requests joining and leaving a running batch get generate()'s tokens`, async () => {
    await useDevice(device);
    const model = CausalLM.load(dir);
    const sch = new Scheduler(model, { maxBatch: 8 });
    type Case = { p: number[]; temperature: number; n: number; seed: number; maxTokens: number; penalty?: number };
    const wave1: Case[] = [
      { p: [250, 41, 7, 8, 9, 10, 11, 12, 13], temperature: 0, n: 1, seed: 1, maxTokens: 40 },
      { p: [300, 301, 302, 303, 304, 305], temperature: 1, n: 3, seed: 7, maxTokens: 36 },
      { p: [5, 17, 99, 3], temperature: 0, n: 1, seed: 1, maxTokens: 3 },
      { p: [1, 2], temperature: 1, n: 2, seed: 8, maxTokens: 25, penalty: 1.3 },
    ];
    // joins once the short request has finished (its row is free, and the batch is longer than these prompts)
    const wave2: Case[] = [
      { p: [1, 2], temperature: 1, n: 2, seed: 9, maxTokens: 20 },
      { p: [42], temperature: 0, n: 1, seed: 1, maxTokens: 15 },
      { p: [7, 8, 9], temperature: 0.7, n: 1, seed: 10, maxTokens: 12 },
    ];
    const run = (c: Case, onToken?: () => void) => sch.submit({ promptIds: c.p, n: c.n, maxTokens: c.maxTokens, sampling: { temperature: c.temperature, repetitionPenalty: c.penalty },
      seed: c.seed, stopTokenIds: [7], onToken }).done;
    const subs: Promise<{ tokenIds: number[]; finishReason: string }[]>[] = [], later: typeof subs = [];
    for (const [k, c] of wave1.entries()) {
      subs.push(run(c, k === 2 ? () => { if (later.length === 0) for (const w of wave2) later.push(run(w)); } : undefined));
      await new Promise((r) => setTimeout(r, k % 3)); // some join at once, some a few steps later
    }
    await subs[2];
    const got = await Promise.all([...subs, ...later]);
    [...wave1, ...wave2].forEach((c, k) => {
      const want = generate(model, [c.p], { n: c.n, maxTokens: c.maxTokens, temperature: c.temperature, repetitionPenalty: c.penalty, seed: c.seed, stopTokenIds: [7] });
      want.forEach((w, i) => {
        assert.deepEqual(got[k][i].tokenIds, w.tokenIds, `request ${k} completion ${i}`);
        assert.equal(got[k][i].finishReason, w.finishReason);
      });
    });
    assert.ok(sch.stats.joinedRunning > 0, "some requests joined a batch that was already decoding");
    assert.ok(sch.stats.placedInFreeRows > 0 && sch.stats.layouts > 1, `joins into free rows ${sch.stats.placedInFreeRows}, layouts ${sch.stats.layouts}`);
    assert.ok(sch.stats.steps < sch.stats.tokens / 2, `${sch.stats.tokens} tokens in ${sch.stats.steps} steps`);
    await sch.close();
  });
}

test("scheduler (cpu): cancel ends a request's completions at the next step; close() cancels the rest", async () => {
  await useDevice("cpu");
  const model = CausalLM.load(fixtureModels()[0]);
  const sch = new Scheduler(model, { maxBatch: 4 });
  let seen = 0;
  const a = sch.submit({ promptIds: [1, 2, 3], n: 2, maxTokens: 300, sampling: { temperature: 1 }, seed: 1, onToken: () => { if (++seen === 10) a.cancel(); } });
  const r = await a.done;
  assert.deepEqual(r.map((c) => c.finishReason), ["cancelled", "cancelled"]);
  assert.ok(r[0].tokenIds.length <= 6, `${r[0].tokenIds.length} tokens`);
  const waiting = sch.submit({ promptIds: [4, 5], n: 4, maxTokens: 300, seed: 2 });
  const b = sch.submit({ promptIds: [4, 5], n: 1, maxTokens: 300, seed: 2 }); // waits: the batch is full
  await new Promise((r) => setTimeout(r, 5));
  await sch.close();
  assert.ok((await waiting.done).every((c) => c.finishReason === "cancelled" || c.finishReason === "length"));
  assert.deepEqual((await b.done).map((c) => c.finishReason), ["cancelled"]);
  assert.throws(() => sch.submit({ promptIds: [1], maxTokens: 1 }), /closed/);
});
