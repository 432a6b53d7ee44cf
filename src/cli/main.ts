// The `aha` command line: argument parsing into the same typed option objects the API takes.
// Paths given as flags are taken from the working directory; paths inside a config file from the config's folder.
// A --model that is no local folder may be a Hugging Face hub id in the local hub cache (--revision picks a ref).
import { Command, InvalidArgumentError, Option } from "commander";
import { runLogits } from "./logits.ts";
import { runGenerate } from "./generate.ts";
import { runEval, runSft, runTrain } from "./train.ts";
import { exportModel } from "../export/index.ts";
import { registerServe } from "./serve.ts";
import { registerChat } from "./chat.ts";
import { registerDashboard } from "./dashboard.ts";
import { addQuantOptions, quantizationOf } from "./quant-options.ts";
import { MODEL_HELP as MODEL, REVISION_HELP as REVISION } from "./model-options.ts";
import { packageVersion } from "../package.ts";

const program = new Command();
program.name("aha").description("GRPO-family reinforcement learning for open LLMs, in TypeScript").version(packageVersion())
  .showHelpAfterError();

// argument parsers with ranges (commander names the option in its error: "option '--temperature <t>' argument '-1'
// is invalid. must be ≥ 0")
const ranged = (isInt: boolean, lo?: number, hi?: number, loOpen = false) => (v: string) => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("not a number.");
  if (isInt && !Number.isInteger(n)) throw new InvalidArgumentError("not an integer.");
  if (lo !== undefined && (loOpen ? n <= lo : n < lo)) throw new InvalidArgumentError(`must be ${loOpen ? ">" : "≥"} ${lo}.`);
  if (hi !== undefined && n > hi) throw new InvalidArgumentError(`must be ≤ ${hi}.`);
  return n;
};
const int = ranged(true);

addQuantOptions(program.command("logits")
  .description("write float32 logits [B, T, V] for input_ids in a safetensors file (parity with transformers)")
  .requiredOption("--model <dir>", MODEL)
  .option("--revision <rev>", REVISION)
  .option("--adapter <dir>", "PEFT LoRA adapter folder")
  .requiredOption("--input <file>", "safetensors with input_ids [B, T] (+ attention_mask, position_ids)")
  .requiredOption("--output <file>", "where to write logits"))
  .action((o) => runLogits({ ...o, quantization: quantizationOf(o) }));

addQuantOptions(program.command("generate")
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
  .addOption(new Option("-n, --n <n>", "completions per prompt").argParser(ranged(true, 1)).default(1))
  .addOption(new Option("--max-tokens <n>", "new tokens per completion").argParser(ranged(true, 1)).default(128))
  .addOption(new Option("--temperature <t>", "0 = greedy").argParser(ranged(false, 0)).default(1))
  .addOption(new Option("--top-p <p>", "nucleus sampling, in (0, 1]").argParser(ranged(false, 0, 1, true)).default(1))
  .addOption(new Option("--top-k <k>", "0 = off").argParser(ranged(true, 0)).default(0))
  .addOption(new Option("--min-p <p>", "0 = off").argParser(ranged(false, 0, 1)).default(0))
  .addOption(new Option("--repetition-penalty <r>", "1 = off").argParser(ranged(false, 0, undefined, true)).default(1))
  .addOption(new Option("--seed <s>").argParser(int).default(0))
  .option("--stop <text...>", "stop strings")
  .option("--json", "one JSON object per completion: token_ids, text, finish_reason, logprobs"))
  .action((o) => runGenerate({ ...o, quantization: quantizationOf(o) }));

program.command("train")
  .description("GRPO training from a YAML config (TRL option names); with no config, the embedded default run")
  .argument("[config]", "config.yaml")
  .option("--resume", "continue from the newest checkpoint in output_dir")
  .option("--overwrite", "replace the run in output_dir (overwrite_output_dir)")
  .option("--device <d>", "cpu or cuda (overrides the config)")
  .addOption(new Option("--max-steps <n>", "override max_steps").argParser(ranged(true, 1)))
  .option("--output-dir <dir>", "override output_dir")
  .option("--dashboard [port]", "serve a live dashboard of the run (report_to: dashboard; default port 6006)")
  .option("--dry-run", "print the predicted peak device memory by category (from config.json alone, no weights read) and exit")
  .option("--gpu-memory <size>", "with --dry-run: the device memory to fit (e.g. 24GiB, 16GB); the largest micro-batch that fits")
  .option("--gpu <name>", "with --dry-run: a card's memory (t4, a100-40, a100-80, 4090, 3090, l4, h100, h200)")
  .option("--example <name>", "an embedded example instead of the default run: calculator (a tiny model learns to call a calculator tool)")
  .addHelpText("after", "\nRelative paths inside CONFIG are taken from its folder; flags' paths from the working directory.\n" +
    "Every config option, with its default: src/grpo/config.ts (TRL's names in snake_case).")
  .action(async (config, o) => {
    if (o.dryRun) {
      if (!config) throw new Error("--dry-run needs a config");
      const { runDryRun } = await import("./dry-run.ts");
      return runDryRun(config, o);
    }
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
  .addOption(new Option("--max-steps <n>").argParser(ranged(true, 1)))
  .option("--output-dir <dir>")
  .action((config, o) => runSft(config, o));

addQuantOptions(program.command("eval")
  .description("sample one completion per prompt of a split; accuracy and mean reward per function")
  .argument("<config>", "config.yaml")
  .option("--adapter <dir>", "adapter to evaluate (default: the config's)")
  .option("--split <name>", "dataset split (default: dataset.eval_split, test)")
  .addOption(new Option("--limit <n>", "first N rows").argParser(ranged(true, 1)))
  .addOption(new Option("--temperature <t>", "sampling temperature (default: the config's)").argParser(ranged(false, 0)))
  .option("--device <d>", "cpu or cuda")
  .option("--json", "print one JSON object"))
  .action((config, o) => runEval(config, { ...o, quantization: quantizationOf(o) }));

addQuantOptions(program.command("export")
  .description("export a model (+ adapter) as a PEFT adapter, a merged HF checkpoint or GGUF")
  .requiredOption("--model <dir>", `base model: ${MODEL}`)
  .option("--revision <rev>", REVISION)
  .option("--adapter <dir>", "PEFT adapter to export or merge")
  .addOption(new Option("--format <f>", "output format").choices(["peft", "hf", "gguf"]).makeOptionMandatory())
  .option("--type <t>", "gguf: f32|f16|bf16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k; hf/peft: f32|f16|bf16")
  .requiredOption("--out <path>", "output folder (peft, hf) or .gguf file")
  .option("--overwrite", "replace an existing output")
  .option("--no-merge", "gguf with --adapter: write the base GGUF plus a GGUF LoRA adapter instead of merging"))
  .action(async (o) => {
    const bar = process.stderr.isTTY;
    const res = await exportModel({
      model: o.model, revision: o.revision, adapter: o.adapter, format: o.format, type: o.type, out: o.out, overwrite: !!o.overwrite, mergeAdapter: o.merge,
      quantization: quantizationOf(o),
      onProgress: bar ? (p) => process.stderr.write(`\rexport ${p.phase} ${p.done}/${p.total} ${p.item ?? ""}`.padEnd(80).slice(0, 100)) : undefined,
    });
    if (bar) process.stderr.write("\n");
    for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
    for (const f of res.files) process.stdout.write(`${f}\n`);
  });

registerServe(program, int);
registerChat(program, ranged);
registerDashboard(program, int);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`aha: ${(e as Error).message}\n`);
  process.exit(1);
}
