// `aha serve`: the OpenAI-compatible server (src/serve/server.ts) from the command line; SIGINT/SIGTERM shut it down
// gracefully (running requests finish, up to 10 s), a second signal exits at once.
import type { Command } from "commander";
import { Option } from "commander";
import { startServer } from "../serve/server.ts";
import { addQuantOptions, quantizationOf } from "./quant-options.ts";
import type { Device } from "../engine/index.ts";
import { resolveHubPath } from "../hub/cache.ts";
import { MODEL_HELP, REVISION_HELP } from "./model-options.ts";

export function registerServe(program: Command, int: (v: string) => number): void {
  addQuantOptions(program.command("serve")
    .description("serve a model (and LoRA adapters) over OpenAI's HTTP API with continuous batching")
    .requiredOption("--model <dir>", MODEL_HELP)
    .option("--revision <rev>", REVISION_HELP)
    .option("--adapter <name=dir...>", "LoRA adapter served under a name (requests pick it with `model`); repeatable", collect, [])
    .option("--host <host>", "address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface)", "127.0.0.1")
    .addOption(new Option("--port <port>", "port (0: any free port)").argParser(int).default(8000))
    .addOption(new Option("--device <d>", "cpu or cuda").choices(["cpu", "cuda"]).default("cpu"))
    .option("--api-key <key>", "require 'Authorization: Bearer <key>' (default: $AHA_API_KEY, else none)")
    .addOption(new Option("--max-batch <n>", "completions decoded together at most").argParser(int).default(32))
    .option("--served-model-name <name>", "the base model's name in /v1/models (default: the hub id, or the folder's name)")
    .option("--quiet", "no request log"))
    .action(async (o) => {
      const adapters: Record<string, string> = {};
      for (const a of o.adapter as string[]) {
        const eq = a.indexOf("=");
        if (eq <= 0 || eq === a.length - 1) throw new Error(`--adapter ${a}: expected NAME=DIR`);
        adapters[a.slice(0, eq)] = a.slice(eq + 1);
      }
      const log = (l: string) => process.stderr.write(`${new Date().toISOString()} ${l}\n`);
      const model = resolveHubPath(o.model, { revision: o.revision });
      const srv = await startServer({
        model, adapters, host: o.host, port: o.port, device: o.device as Device, apiKey: o.apiKey ?? process.env.AHA_API_KEY,
        maxBatch: o.maxBatch, quantization: quantizationOf(o), log: o.quiet ? undefined : log,
        servedModelName: o.servedModelName ?? (model === o.model ? undefined : o.model), // a hub id is the name
      });
      process.stdout.write(`aha serve: listening on ${srv.url}/v1 (models: ${srv.models.join(", ")})\n`);
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) process.exit(130);
        stopping = true;
        process.stderr.write(`aha serve: ${sig}, finishing running requests (again to quit now)\n`);
        srv.close().then(() => process.exit(0));
      };
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGTERM", () => stop("SIGTERM"));
    });
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}
