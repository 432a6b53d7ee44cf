// Multi-turn rollouts: tool results prefilled into the live KV cache (generateTurns) against re-encoding the whole
// conversation for every new turn (TRL's _tool_call_loop: after each round of tool calls, the sequences that called a
// tool are generated again from prompt + completion + results). Same random-weight small llama (bench/random-model.ts
// "small-llama"), 4 prompts × 8 completions, turns ended by a set of stop ids (about every 24 tokens), 24 appended ids
// per tool result, up to 4 turns, 192 completion tokens. Prints sampled tokens per second of each and their ratio;
// the two sample different tokens (different passes draw differently), so the figure is throughput, not equality.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHAPES, writeRandomModel } from "./random-model.ts";
import { CausalLM } from "../src/models/model.ts";
import { generate } from "../src/generate/generate.ts";
import { generateTurns, type TurnEnd } from "../src/generate/turns.ts";

const PROMPTS = 4, N = 8, P = 48, BUDGET = 192, TURNS = 4, RESULT = 24;

function toolResult(seq: number, turn: number, V: number): number[] {
  return Array.from({ length: RESULT }, (_, i) => (seq * 131 + turn * 17 + i * 7) % V);
}

export async function benchAgents(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "aha-bench-"));
  try {
    const shape = SHAPES["small-llama"];
    writeRandomModel(dir, shape);
    const model = CausalLM.load(dir);
    const V = shape.vocab_size;
    const stops = Array.from({ length: V / 24 }, (_, i) => i * 24 + 5);
    const prompts = Array.from({ length: PROMPTS }, (_, p) => Array.from({ length: P }, (_, i) => (p * 977 + i * 7919) % V));
    console.log(`model: small-llama (random weights), ${PROMPTS} prompts × ${N} completions, ${RESULT} appended ids per tool result, ≤ ${TURNS} turns, ${BUDGET} tokens`);

    // prefilled into the live cache
    const turns = new Map<number, number>();
    const stats = { forwards: 0, repacks: 0 };
    /** CPU seconds of this process (all threads) since c0: on a shared machine, closer to the idle wall time than the wall clock */
    const cpu = (c0: NodeJS.CpuUsage) => { const d = process.cpuUsage(c0); return (d.user + d.system) / 1e6; };
    let t0 = performance.now(), c0 = process.cpuUsage();
    const out = await generateTurns(model, prompts, {
      n: N, maxTokens: BUDGET, stopTokenIds: stops, seed: 1, stats,
      onTurnEnd: (t: TurnEnd) => {
        const k = (turns.get(t.seq) ?? 0) + 1;
        turns.set(t.seq, k);
        const ids = toolResult(t.seq, k, V);
        return t.finish === "stop" && k < TURNS && ids.length < t.room ? ids : null;
      },
    });
    const live = (performance.now() - t0) / 1000, liveCpu = cpu(c0);
    const sampledLive = out.reduce((a, c) => a + c.own.filter((o) => o).length, 0);
    const turnsLive = out.reduce((a, c) => a + c.turns, 0);
    console.log(`prefill into the live cache: ${sampledLive} sampled tokens in ${turnsLive} turns, ${live.toFixed(2)} s (${(sampledLive / live).toFixed(0)} tokens/s; ${liveCpu.toFixed(1)} CPU-s), ${stats.forwards} forwards, ${stats.repacks} repacks`);

    // re-encoding: each round generates again from the whole conversation of every sequence that called a tool
    t0 = performance.now();
    c0 = process.cpuUsage();
    let convs = prompts.flatMap((p) => Array.from({ length: N }, () => ({ prompt: p, done: [] as number[], turn: 0, seq: 0 })));
    convs.forEach((c, i) => { c.seq = i; });
    let sampledRe = 0, turnsRe = 0, reencoded = 0;
    for (let round = 0; convs.length > 0 && round < TURNS; round++) {
      const ctx = convs.map((c) => [...c.prompt, ...c.done]);
      reencoded += ctx.reduce((a, x) => a + x.length, 0);
      const gen = generate(model, ctx, { n: 1, maxTokens: BUDGET, stopTokenIds: stops, seed: 2 + round, logprobs: false });
      const next: typeof convs = [];
      gen.forEach((g, i) => {
        const c = convs[i];
        const room = BUDGET - c.done.length;
        const ids = g.tokenIds.slice(0, room);
        sampledRe += ids.length;
        turnsRe++;
        c.done.push(...ids);
        c.turn++;
        const result = toolResult(c.seq, c.turn, V);
        if (g.finishReason === "stop" && ids.length === g.tokenIds.length && c.turn < TURNS && c.done.length + result.length < BUDGET) {
          c.done.push(...result);
          next.push(c);
        }
      });
      convs = next;
    }
    const re = (performance.now() - t0) / 1000, reCpu = cpu(c0);
    console.log(`re-encoding each turn (TRL's loop): ${sampledRe} sampled tokens in ${turnsRe} turns, ${re.toFixed(2)} s (${(sampledRe / re).toFixed(0)} tokens/s; ${reCpu.toFixed(1)} CPU-s), ${reencoded} prompt tokens prefilled`);
    console.log(`live-cache prefill: ${((sampledLive / live) / (sampledRe / re)).toFixed(2)}× the sampled tokens per second of re-encoding (wall clock), ` +
      `${((sampledLive / liveCpu) / (sampledRe / reCpu)).toFixed(2)}× per CPU-second`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
