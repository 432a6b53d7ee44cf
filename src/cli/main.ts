// The `aha` command line: argument parsing into the same typed option objects the API takes.
import { Command, Option } from "commander";
import { runLogits } from "./logits.ts";
import { runGenerate } from "./generate.ts";

const program = new Command();
program.name("aha").description("GRPO-family reinforcement learning for open LLMs, in TypeScript").showHelpAfterError();

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
  .requiredOption("--model <dir>", "Hugging Face model folder")
  .option("--adapter <dir>", "PEFT LoRA adapter folder")
  .requiredOption("--input <file>", "safetensors with input_ids [B, T] (+ attention_mask, position_ids)")
  .requiredOption("--output <file>", "where to write logits")
  .action((o) => runLogits(o));

program.command("generate")
  .description("sample completions; streams text, or one JSON object per completion with --json")
  .requiredOption("--model <dir>", "Hugging Face model folder")
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

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`aha: ${(e as Error).message}\n`);
  process.exit(1);
}
