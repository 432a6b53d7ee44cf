// `aha chat`: an interactive terminal chat with a model (and adapter): answers stream as they are decoded, the
// conversation is kept and rendered with the chat template each turn, and commands change it: /reset, /system,
// /save, /set, /help, /exit. Ctrl-C stops the answer being written (the part written so far stays in the history)
// and never the program while it answers; at the prompt a second Ctrl-C in a row, Ctrl-D or /exit quits.
// With stdin not a terminal (a pipe, a file) every line is a turn (commands included): the answers are printed one
// per turn, and the program exits at the end of the input.
// Is: the same engine as `aha serve` (the Scheduler, so that generation yields to the terminal between decode steps
// and Ctrl-C is read while an answer streams). Is not: a line editor beyond node:readline's, or markdown rendering.
import { createInterface } from "node:readline";
import { Option } from "commander";
import { renameSync, writeFileSync } from "node:fs";
import { CausalLM } from "../models/model.ts";
import { LoraAdapter } from "../models/lora.ts";
import { loadTokenizer, type Message } from "../tokenize/index.ts";
import { setDefaultDevice, type Device } from "../engine/index.ts";
import { Scheduler } from "../serve/scheduler.ts";
import { runText } from "../serve/text-run.ts";
import { resolveHubPath } from "../hub/cache.ts";
import { MODEL_HELP, REVISION_HELP } from "./model-options.ts";

export interface ChatArgs {
  model: string;
  adapter?: string;
  system?: string;
  temperature: number;
  topP: number;
  maxTokens: number;
  seed?: number;
  device?: string;
}

const HELP = `commands:
  /reset            forget the conversation (the system prompt stays)
  /system [text]    set the system prompt (none: remove it)
  /save [file]      write the conversation as JSON (default chat-<time>.json)
  /set NAME VALUE   temperature, top_p, max_tokens or seed
  /exit             quit (also Ctrl-D); Ctrl-C stops an answer`;

/** Control characters a model could write that would drive the terminal (escape sequences): shown as U+FFFD. */
const sanitize = (s: string) => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u009b]/g, "\uFFFD");

export async function runChat(a: ChatArgs, input: NodeJS.ReadStream = process.stdin, out: NodeJS.WriteStream = process.stdout): Promise<void> {
  if (a.device) setDefaultDevice(a.device as Device);
  const model = CausalLM.load(a.model);
  const tok = loadTokenizer(a.model);
  if (!tok.hasChatTemplate) throw new Error(`${a.model}: the tokenizer has no chat template (aha chat needs one; try aha generate)`);
  const adapters = new Map(a.adapter ? [["adapter", LoraAdapter.load(a.adapter, model.linearShapes())]] : []);
  const sch = new Scheduler(model, { adapters, maxBatch: 1 });
  const tty = !!input.isTTY;
  const settings = { temperature: a.temperature, top_p: a.topP, max_tokens: a.maxTokens, seed: a.seed ?? Math.floor(Math.random() * 2 ** 31) };
  let system = a.system ?? "";
  let history: Message[] = [];
  let turn = 0;
  let answering: { cancel: () => void; stopped: boolean } | null = null;
  let lastInterrupt = 0;

  const rl = createInterface({ input, output: tty ? out : undefined, terminal: tty, prompt: "> " });
  const say = (s: string) => { if (tty) out.write(s + "\n"); };
  rl.on("SIGINT", () => {
    if (answering) { answering.stopped = true; answering.cancel(); return; }
    if (Date.now() - lastInterrupt < 2000) { rl.close(); return; }
    lastInterrupt = Date.now();
    out.write("\n(Ctrl-C again, Ctrl-D or /exit to quit)\n");
    rl.prompt();
  });
  say(`aha chat: ${a.model}${a.adapter ? ` + ${a.adapter}` : ""}. /help for commands; Ctrl-C stops an answer, Ctrl-D quits.`);

  const command = (line: string): boolean => {
    const [cmd, ...rest] = line.slice(1).split(/\s+/);
    const arg = line.slice(1 + cmd.length).trim();
    switch (cmd) {
      case "exit": case "quit": case "bye": return false;
      case "help": out.write(HELP + "\n"); break;
      case "reset": history = []; say("(conversation cleared)"); break;
      case "system": system = arg; say(system ? "(system prompt set)" : "(system prompt removed)"); break;
      case "save": {
        const file = arg || `chat-${new Date().toISOString().replace(/[:.]/g, "-")}.json`;
        const tmp = `${file}.tmp-${process.pid}`;
        writeFileSync(tmp, JSON.stringify({ model: a.model, adapter: a.adapter ?? null, settings, messages: conversation() }, null, 2) + "\n");
        renameSync(tmp, file);
        say(`(saved to ${file})`);
        break;
      }
      case "set": {
        const [key, value] = rest, v = Number(value);
        if (!(key in settings) || !Number.isFinite(v)) { out.write(`(usage: /set ${Object.keys(settings).join("|")} NUMBER)\n`); break; }
        settings[key as keyof typeof settings] = v;
        say(`(${key} = ${v})`);
        break;
      }
      default: out.write(`(unknown command /${cmd}; /help lists them)\n`);
    }
    return true;
  };
  const conversation = (): Message[] => [...(system ? [{ role: "system", content: system }] : []), ...history];

  const answer = async (text: string): Promise<void> => {
    history.push({ role: "user", content: text });
    let ids = tok.encodeChat(conversation(), { addGenerationPrompt: true });
    // forget the oldest turns while the conversation and an answer do not fit the context
    while (ids.length + 1 > model.config.maxPositions && history.length > 1) {
      history.splice(0, 2);
      ids = tok.encodeChat(conversation(), { addGenerationPrompt: true });
      say("(the oldest turn was dropped to fit the context)");
    }
    if (ids.length + 1 > model.config.maxPositions) { history.pop(); out.write("(that message is longer than the model's context)\n"); return; }
    const state = { cancel: () => {}, stopped: false };
    const run = runText(sch, tok, {
      promptIds: ids, n: 1, maxTokens: Math.min(settings.max_tokens, model.config.maxPositions - ids.length),
      sampling: { temperature: settings.temperature, topP: settings.top_p }, seed: settings.seed + turn++, adapter: a.adapter ? "adapter" : null,
      onPiece: (_i, piece) => out.write(out.isTTY ? sanitize(piece) : piece),
    });
    state.cancel = run.cancel;
    answering = state;
    const [res] = await run.done;
    answering = null;
    out.write(state.stopped ? " [stopped]\n" : "\n");
    history.push({ role: "assistant", content: res.text });
  };

  rl.prompt();
  try {
    for await (const raw of rl) {
      const line = raw.trim();
      if (line.startsWith("/")) { if (!command(line)) break; }
      else if (line) await answer(line);
      rl.prompt();
    }
  } finally {
    rl.close();
    await sch.close();
  }
  if (tty) out.write("\n");
}

/** A range-checked number parser for commander (main.ts's `ranged`): integer or not, lower bound (open or closed), upper bound. */
type Ranged = (isInt: boolean, lo?: number, hi?: number, loOpen?: boolean) => (v: string) => number;

export function registerChat(program: import("commander").Command, ranged: Ranged): void {
  program.command("chat")
    .description("chat with a model in the terminal (streaming, history, /reset, /system, /save); a pipe on stdin: one answer per line")
    .requiredOption("--model <dir>", MODEL_HELP)
    .option("--revision <rev>", REVISION_HELP)
    .option("--adapter <dir>", "PEFT LoRA adapter folder")
    .option("--system <text>", "system prompt")
    .addOption(new Option("--temperature <t>", "0 = greedy").argParser(ranged(false, 0)).default(0.7))
    .addOption(new Option("--top-p <p>").argParser(ranged(false, 0, 1, true)).default(1))
    .addOption(new Option("--max-tokens <n>", "longest answer in tokens").argParser(ranged(true, 1)).default(512))
    .addOption(new Option("--seed <s>", "seed of the first answer (the next ones count up from it)").argParser(ranged(true)))
    .addOption(new Option("--device <d>", "cpu or cuda").choices(["cpu", "cuda"]))
    .action((o) => runChat({ ...o, model: resolveHubPath(o.model, { revision: o.revision }) }));
}
