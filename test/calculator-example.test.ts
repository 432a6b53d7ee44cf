// The calculator example on its real model (assets/tiny-calc): the model calls the tool in the hermes format, the
// calls are parsed and run, and the whole conversation the rollout built (prompt ids + sampled and prefilled ids)
// is exactly what the chat template renders for the conversation's messages; the log-probs of the model's own tokens
// equal one forward over it, tool and template tokens masked. The pretrained model leaves GRPO room: it calls the tool
// in a minority of its samples, is mostly right when it does and mostly wrong when it does not. A few steps of
// `aha train --example calculator` raise the tool-call rate and the held-out accuracy, and log whole conversations with
// tool metrics. (The full run's before/after accuracy is measured by the example's command, see the README.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { CausalLM } from "../src/models/model.ts";
import { loadTokenizer, type Message } from "../src/tokenize/index.ts";
import { noGrad, scope } from "../src/engine/index.ts";
import { validateConfig } from "../src/grpo/config.ts";
import type { EvalResult } from "../src/grpo/eval.ts";
import { completionLogprobs } from "../src/grpo/loss.ts";
import { padBatch } from "../src/grpo/rollout.ts";
import { createAgent, runEpisodes } from "../src/agents/rollout.ts";
import { CALC_CONFIG, CALC_MODEL, runCalculator } from "../src/defaults/calculator-run.ts";
import { answerText, calcRows, evaluateExpression } from "../src/defaults/calculator.ts";

test("calculator model: tool calls parsed and run; the rollout's ids are the template's rendering of the conversation; own log-probs = one forward", async () => {
  const model = CausalLM.load(CALC_MODEL, { dtype: "f32" });
  const tok = loadTokenizer(CALC_MODEL);
  const cfg = validateConfig({ ...CALC_CONFIG, seed: 3 });
  const agent = (await createAgent(cfg, tok, model.config.arch))!;
  assert.equal(agent.format, "hermes");
  const rows = calcRows("test", 40, 5);
  const eps = await runEpisodes(model, tok, rows, agent, { ...cfg, n: 4, seed: 9 });
  let withTool = 0, exact = 0;
  const right = { tool: 0, direct: 0 };
  for (const ep of eps) {
    const calls = ep.messages.filter((m) => m.role === "assistant" && m.tool_calls);
    const final = ep.messages.at(-1)!;
    const ok = final.role === "assistant" && !final.tool_calls && String(final.content).includes(answerText(rows[ep.row].answer));
    right[calls.length > 0 ? "tool" : "direct"] += Number(ok);
    if (calls.length === 0) continue;
    withTool++;
    // each result is the calculator's value of the parsed expression (or its error)
    ep.messages.forEach((m, j) => {
      if (m.role !== "tool") return;
      const call = (ep.messages[j - 1].tool_calls as { function: { arguments: { expression?: unknown } } }[])[0];
      let want: string;
      try { want = String(evaluateExpression(String(call.function.arguments.expression))); } catch (e) { want = JSON.stringify({ error: `calculator: ${(e as Error).message}` }); }
      assert.equal(m.content, want);
    });
    // the conversation as the template renders it: prompt + completion ids (+ the "\n" after the last end of turn)
    if (ep.completion.finishReason === "stop" && ep.cut === null) {
      const rendered = tok.encodeChat([...ep.prompt, ...ep.messages], { tools: agent.templateTools });
      if (rendered.join() === [...ep.promptIds, ...ep.completion.tokenIds, ...tok.encode("\n", { addSpecialTokens: false })].join()) exact++;
    }
  }
  // the room GRPO has: the tool is a minority choice that pays
  assert.ok(withTool >= 12 && withTool <= eps.length / 2, `${withTool} of ${eps.length} episodes called the tool`);
  assert.ok(right.tool >= 0.7 * withTool, `${right.tool} of ${withTool} tool-calling episodes answered right`);
  assert.ok(right.direct <= 0.1 * (eps.length - withTool), `${right.direct} of ${eps.length - withTool} episodes without the tool answered right`);
  assert.ok(exact >= withTool * 0.75, `${exact} of ${withTool} tool-calling episodes are exactly the template's rendering`);
  // masked log-probs: the training batch of these episodes
  const batch = padBatch(eps.map((e) => e.promptIds), eps.map((e) => e.completion.tokenIds), eps.map((e) => e.completion.own), eps.map(() => true), 0);
  const logp = noGrad(() => scope(() => completionLogprobs(model, batch, 1).logp.f32()));
  let worst = 0, masked = 0;
  eps.forEach((e, b) => e.completion.own.forEach((o, t) => {
    if (o) worst = Math.max(worst, Math.abs(logp[b * batch.T + t] - e.completion.logprobs[t]));
    else masked++;
  }));
  assert.ok(masked > 50, "tool results and template tokens are in the batch, masked");
  assert.ok(worst < 1e-4, `max |Δ logp| ${worst}`);
});

test("aha train --example calculator: a few steps call the tool more and answer better; whole conversations and tool metrics logged", async () => {
  const out = mkdtempSync(join(tmpdir(), "aha-calc-"));
  const steps = 6;
  try {
    const r = await runCalculator({ maxSteps: steps, heldOut: 48, quiet: true, outputDir: out });
    const calls = (e: EvalResult) => e.metrics?.["tools/call_frequency"] ?? 0;
    assert.ok(calls(r.after) > calls(r.before) + 0.15, `held-out tool calls per problem ${calls(r.before)} → ${calls(r.after)}`);
    assert.ok(r.after.accuracy > r.before.accuracy + 0.1, `held-out accuracy ${r.before.accuracy} → ${r.after.accuracy}`);
    const m = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(m.length, steps);
    for (const k of ["tools/call_frequency", "tools/failure_frequency", "episodes/turns_mean", "episodes/cut_by_budget", "rewards/gsm8k/correctness/mean"]) assert.ok(k in m[0], k);
    const logged = readFileSync(join(out, "completions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).completion as Message[]);
    assert.ok(logged.every((c) => Array.isArray(c) && c[0].role === "assistant"));
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8"));
    assert.equal(summary.steps, steps);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
