// The `aha` command line: argument parsing into the same typed option objects the API takes.
// Paths given as flags are taken from the working directory; paths inside a config file from the config's folder.
// A --model that is no local folder may be a Hugging Face hub id in the local hub cache (--revision picks a ref).
import { Command, Option } from "commander";
import { runLogits } from "./logits.ts";
import { runGenerate } from "./generate.ts";
import { runEval, runSft, runTrain } from "./train.ts";
import { exportModel } from "../export/index.ts";
import { packageVersion } from "../package.ts";

const MODEL = "Hugging Face model folder, or hub id in the local hub cache";
const REVISION = "with a hub id: the ref or commit of the cached snapshot (default main)";

const program = new Command();
program.name("aha").description("GRPO-family reinforcement learning for open LLMs, in TypeScript").version(packageVersion())
  .showHelpAfterError();

const num = (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`'${v}' is not a number`);
  return n;
};
const int = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`'${v}' is not an integer`);
  return n;
};

program.command("logits")
  .description("write float32 logits [B, T, V] for input_ids in a safetensors file (parity with transformers)")
  .requiredOption("--model <dir>", MODEL)
  .option("--revision <rev>", REVISION)
  .option("--adapter <dir>", "PEFT LoRA adapter folder")
  .requiredOption("--input <file>", "safetensors with input_ids [B, T] (+ attention_mask, position_ids)")
  .requiredOption("--output <file>", "where to write logits")
  .action((o) => runLogits(o));

program.command("generate")
  .description("sample completions; streams text, or one JSON object per completion with --json")
  .requiredOption("--model <dir>", MODEL)
  .option("--revision <rev>", REVISION)
  .option("--adapter <dir>", "PEFT LoRA adapter folder")
  .option("--prompt <text>", "one prompt")
  .option("--prompts <file>", "JSONL with a 'prompt' (text or messages) per line")
  .option("--prompt-ids <ids>", "comma-separated token ids")
  .option("--chat", "apply the chat template (default when the tokenizer has one)")
  .option("--no-chat", "do not apply the chat template")
  .option("--system <text>", "system prompt (with --chat)")
  .addOption(new Option("-n, --n <n>", "completions per prompt").argParser(int).default(1))
  .addOption(new Option("--max-tokens <n>", "new tokens per completion").argParser(int).default(128))
  .addOption(new Option("--temperature <t>", "0 = greedy").argParser(num).default(1))
  .addOption(new Option("--top-p <p>").argParser(num).default(1))
  .addOption(new Option("--top-k <k>").argParser(int).default(0))
  .addOption(new Option("--min-p <p>").argParser(num).default(0))
  .addOption(new Option("--repetition-penalty <r>").argParser(num).default(1))
  .addOption(new Option("--seed <s>").argParser(int).default(0))
  .option("--stop <text...>", "stop strings")
  .option("--json", "one JSON object per completion: token_ids, text, finish_reason, logprobs")
  .action((o) => runGenerate(o));

program.command("train")
  .description("GRPO training from a YAML config (TRL option names); with no config, the embedded default run")
  .argument("[config]", "config.yaml")
  .option("--resume", "continue from the newest checkpoint in output_dir")
  .option("--device <d>", "cpu or cuda (overrides the config)")
  .addOption(new Option("--max-steps <n>", "override max_steps").argParser(int))
  .option("--output-dir <dir>", "override output_dir")
  .option("--example <name>", "an embedded example instead of the default run: calculator (a tiny model learns to call a calculator tool)")
  .addHelpText("after", "\nRelative paths inside CONFIG are taken from its folder; flags' paths from the working directory.\n" +
    "Every config option, with its default: src/grpo/config.ts (TRL's names in snake_case).")
  .action(async (config, o) => {
    if (config) return runTrain(config, o);
    if (o.example !== undefined) {
      if (o.example !== "calculator") throw new Error(`unknown example "${o.example}"; examples: calculator`);
      const { runCalculator } = await import("../defaults/calculator-run.ts");
      await runCalculator(o);
      return;
    }
    const { runDefault } = await import("../defaults/run.ts");
    await runDefault(o);
  });

program.command("sft")
  .description("supervised fine-tuning on prompt/completion rows (loss on completion tokens), before GRPO")
  .argument("<config>", "config.yaml (same option names; completion_column names the target)")
  .option("--device <d>", "cpu or cuda")
  .addOption(new Option("--max-steps <n>").argParser(int))
  .option("--output-dir <dir>")
  .action((config, o) => runSft(config, o));

program.command("eval")
  .description("sample one completion per prompt of a split; accuracy and mean reward per function")
  .argument("<config>", "config.yaml")
  .option("--adapter <dir>", "adapter to evaluate (default: the config's)")
  .option("--split <name>", "dataset split (default: dataset.eval_split, test)")
  .addOption(new Option("--limit <n>", "first N rows").argParser(int))
  .addOption(new Option("--temperature <t>", "sampling temperature (default: the config's)").argParser(num))
  .option("--device <d>", "cpu or cuda")
  .option("--json", "print one JSON object")
  .action((config, o) => runEval(config, o));

program.command("export")
  .description("export a model (+ adapter) as a PEFT adapter, a merged HF checkpoint or GGUF")
  .requiredOption("--model <dir>", `base model: ${MODEL}`)
  .option("--revision <rev>", REVISION)
  .option("--adapter <dir>", "PEFT adapter to export or merge")
  .addOption(new Option("--format <f>", "output format").choices(["peft", "hf", "gguf"]).makeOptionMandatory())
  .option("--type <t>", "gguf: f32|f16|bf16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k; hf/peft: f32|f16|bf16")
  .requiredOption("--out <path>", "output folder (peft, hf) or .gguf file")
  .option("--overwrite", "replace an existing output")
  .option("--no-merge", "gguf with --adapter: write the base GGUF plus a GGUF LoRA adapter instead of merging")
  .action(async (o) => {
    const bar = process.stderr.isTTY;
    const res = await exportModel({
      model: o.model, revision: o.revision, adapter: o.adapter, format: o.format, type: o.type, out: o.out, overwrite: !!o.overwrite, mergeAdapter: o.merge,
      onProgress: bar ? (p) => process.stderr.write(`\rexport ${p.phase} ${p.done}/${p.total} ${p.item ?? ""}`.padEnd(80).slice(0, 100)) : undefined,
    });
    if (bar) process.stderr.write("\n");
    for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const f of res.files) process.stdout.write(`${f}\n`);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`aha: ${(e as Error).message}\n`);
  process.exit(1);
}
