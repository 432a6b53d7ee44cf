// `aha serve`: an OpenAI-compatible HTTP server (node:http) in front of the continuous-batching Scheduler.
// Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings; GET /v1/models, /v1/models/{id}, /health.
// Errors are OpenAI's error JSON and never take the server down; with an API key every /v1 route needs
// `Authorization: Bearer KEY`. Binds 127.0.0.1 unless told otherwise. close() stops taking connections, lets the
// running requests finish (up to a grace period), then cancels what is left and frees the engine.
// Is not: TLS, rate limits, or several models per process (one base model and its LoRA adapters).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { basename, resolve } from "node:path";
import { CausalLM } from "../models/model.ts";
import type { Quant4Settings } from "../models/bnb4.ts";
import { LoraAdapter } from "../models/lora.ts";
import { loadTokenizer, type Tokenizer } from "../tokenize/index.ts";
import { memory, setDefaultDevice, type Device } from "../engine/index.ts";
import { Scheduler } from "./scheduler.ts";
import { ApiError } from "./errors.ts";
import { now, type ServeContext } from "./context.ts";
import { chatCompletions } from "./chat.ts";
import { completions, embeddings } from "./completions.ts";

export interface ServeOptions {
  /** Hugging Face model folder */
  model: string;
  /** LoRA adapters by the name requests use in `model` */
  adapters?: Record<string, string>;
  /** default 127.0.0.1 */
  host?: string;
  /** default 8000; 0 picks a free port */
  port?: number;
  /** require `Authorization: Bearer <apiKey>` on /v1 routes */
  apiKey?: string;
  /** completions decoded together at most (default 32) */
  maxBatch?: number;
  /** default cpu */
  device?: Device;
  /** the base model's name in /v1/models (default: the folder's name) */
  servedModelName?: string;
  /** quantise the linear layers to 4 bits at load (--load-in-4bit; folders saved in 4-bit load as stored anyway) */
  quantization?: Quant4Settings | null;
  /** a model and tokenizer already loaded from `model` (tests) */
  loaded?: { model: CausalLM; tokenizer: Tokenizer };
  /** one line per request (method, path, status, ms) */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** http://host:port (the OpenAI base URL is url + "/v1") */
  url: string;
  /** the names requests may give as `model`: the base model's, then the adapters' */
  models: string[];
  port: number;
  scheduler: Scheduler;
  /** stop taking connections, let running requests finish for up to graceMs (default 10 s), then cancel and free */
  close(graceMs?: number): Promise<void>;
}

const MAX_BODY = 32 * 2 ** 20;

/** Load the model, tokenizer and adapters and start listening; resolves once the port is open. */
export async function startServer(o: ServeOptions): Promise<RunningServer> {
  if (o.device) setDefaultDevice(o.device);
  const model = o.loaded?.model ?? CausalLM.load(o.model, { quantization: o.quantization });
  const tok = o.loaded?.tokenizer ?? loadTokenizer(o.model);
  const baseName = o.servedModelName ?? basename(resolve(o.model));
  const adapters = new Map<string, LoraAdapter>();
  for (const [name, dir] of Object.entries(o.adapters ?? {})) {
    if (!name || name === baseName) throw new Error(`--adapter ${name}=${dir}: the name must be non-empty and differ from the base model's (${baseName})`);
    adapters.set(name, LoraAdapter.load(dir, model.linearShapes()));
  }
  const sch = new Scheduler(model, { adapters, maxBatch: o.maxBatch });
  const ctx: ServeContext = { sch, tok, model, baseName, maxContext: model.config.maxPositions };
  const created = now();
  const modelCard = (id: string, root: string, parent: string | null) => ({ id, object: "model", created, owned_by: "aha", root, parent });
  const cards = () => [modelCard(baseName, o.model, null), ...Object.entries(o.adapters ?? {}).map(([a, dir]) => modelCard(a, dir, baseName))];
  const keyBytes = o.apiKey ? Buffer.from(o.apiKey) : null;
  let active = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://x"), path = url.pathname.replace(/\/+$/, "") || "/";
    if (path === "/health") return json(res, 200, { status: "ok", ...sch.load, memory: { engine_bytes: memory(model.embed.device).allocated, heap_bytes: process.memoryUsage().heapUsed, rss_bytes: process.memoryUsage.rss() } });
    if (!path.startsWith("/v1/")) throw new ApiError(404, `no route ${req.method} ${path}`, null, "unknown_url");
    if (keyBytes) {
      const given = Buffer.from(/^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "");
      if (given.length !== keyBytes.length || !timingSafeEqual(given, keyBytes))
        throw new ApiError(401, "Incorrect API key provided. Pass it as 'Authorization: Bearer <key>'.", null, "invalid_api_key", "invalid_request_error");
    }
    if (req.method === "GET" && path === "/v1/models") return json(res, 200, { object: "list", data: cards() });
    if (req.method === "GET" && path.startsWith("/v1/models/")) {
      const id = decodeURIComponent(path.slice("/v1/models/".length)), card = cards().find((c) => c.id === id);
      if (!card) throw new ApiError(404, `The model '${id}' does not exist`, "model", "model_not_found");
      return json(res, 200, card);
    }
    const post = { "/v1/chat/completions": chatCompletions, "/v1/completions": completions, "/v1/embeddings": embeddings }[path];
    if (!post) throw new ApiError(404, `no route ${req.method} ${path}`, null, "unknown_url");
    if (req.method !== "POST") throw new ApiError(405, `${path} takes POST`, null, "method_not_allowed");
    await post(ctx, await readJson(req), res);
  };

  const server = createServer((req, res) => {
    const t0 = performance.now();
    active++;
    res.on("close", () => {
      active--;
      o.log?.(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)} ms`);
    });
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      if (!res.headersSent) json(res, err.status, err.body());
      else if (!res.destroyed) { res.write(`data: ${JSON.stringify(err.body())}\n\n`); res.end(); } // an error in the middle of a stream
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(o.port ?? 8000, o.host ?? "127.0.0.1", () => { server.off("error", fail); ok(); });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    models: [baseName, ...sch.adapterNames],
    port: addr.port,
    scheduler: sch,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        const deadline = Date.now() + graceMs;
        while (active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await sch.close(); // cancels what is still running; its responses end with finish_reason "abort"
        await new Promise((r) => setTimeout(r, 20));
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, `the request body is over ${MAX_BODY / 2 ** 20} MiB`);
    chunks.push(c);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the body is not valid JSON: ${(e as Error).message}`, null, "invalid_json");
  }
}
