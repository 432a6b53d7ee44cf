// An OpenAI-compatible endpoint as judges and embedding rewards use it: the official `openai` client (its retries
// with exponential backoff on 408/409/429/5xx and connection errors, honouring retry-after; its per-request timeout),
// a concurrency limit (p-limit), and a cache keyed by (model, request) that also merges identical requests in flight.
// Is: chat completions (one reply's text) and embeddings (one vector per text). Is not: streaming, tools, or a
// persistent cache (the cache lives as long as the process; failed requests are not cached).
// Endpoints are shared by (base URL, model, key variable), so a judge and a rubric's judge items on the same model
// share one limit and one cache.
import OpenAI from "openai";
import pLimit, { type LimitFunction } from "p-limit";

export interface EndpointOptions {
  /** Base URL of the API (…/v1). Default: $OPENAI_BASE_URL, else https://api.openai.com/v1. */
  baseUrl?: string;
  model: string;
  /** Environment variable holding the API key. Default OPENAI_API_KEY (local servers need none). */
  apiKeyEnv?: string;
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** Retries of a failed request (429, 5xx, timeouts, connection errors), with exponential backoff. Default 4. */
  maxRetries?: number;
  /** Limit of one request, in ms. Default 60000. */
  timeoutMs?: number;
  /** Cache replies by (model, request). Default true. */
  cache?: boolean;
}

/** Most cached replies kept (oldest dropped first). */
const CACHE_ENTRIES = 50_000;
/** Texts per embeddings request. */
const EMBED_BATCH = 256;

export class Endpoint {
  readonly model: string;
  readonly baseUrl: string;
  private readonly client: OpenAI;
  private readonly limit: LimitFunction;
  private readonly cache: Map<string, Promise<unknown>> | null;
  /** Requests sent (retries inside the client not counted) and requests answered from the cache. */
  readonly stats = { requests: 0, cached: 0 };

  constructor(opts: EndpointOptions) {
    this.model = opts.model;
    this.baseUrl = opts.baseUrl ?? process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1";
    const keyVar = opts.apiKeyEnv ?? "OPENAI_API_KEY";
    const apiKey = process.env[keyVar];
    if (opts.apiKeyEnv && !apiKey) throw new Error(`api_key_env: the environment variable ${keyVar} is not set`);
    this.client = new OpenAI({ baseURL: this.baseUrl, apiKey: apiKey || "none", maxRetries: opts.maxRetries ?? 4, timeout: opts.timeoutMs ?? 60_000 });
    this.limit = pLimit(opts.concurrency ?? 8);
    this.cache = opts.cache === false ? null : new Map();
  }

  private cached<T>(key: string, make: () => Promise<T>): Promise<T> {
    const hit = this.cache?.get(key);
    if (hit) {
      this.stats.cached++;
      return hit as Promise<T>;
    }
    const p = this.limit(() => {
      this.stats.requests++;
      return make();
    });
    this.remember(key, p);
    return p;
  }

  /** Cache a request's promise (dropped again if it fails; the oldest entry goes when full). */
  private remember(key: string, p: Promise<unknown>): void {
    if (!this.cache) return;
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, p);
    p.catch(() => this.cache!.get(key) === p && this.cache!.delete(key));
  }

  /** The text of the first choice of a chat completion. */
  chat(messages: { role: "system" | "user" | "assistant"; content: string }[], params: { temperature?: number; maxTokens?: number } = {}): Promise<string> {
    const body = { model: this.model, messages, temperature: params.temperature ?? 0, ...(params.maxTokens ? { max_tokens: params.maxTokens } : {}) };
    return this.cached(JSON.stringify(["chat", body]), async () => {
      const r = await this.client.chat.completions.create(body);
      const text = r.choices?.[0]?.message?.content;
      if (typeof text !== "string") throw new Error(`${this.baseUrl} (${this.model}): the reply has no message content`);
      return text;
    });
  }

  /** One embedding per text (each distinct text asked once, EMBED_BATCH per request, and cached on its own). */
  async embed(texts: string[]): Promise<number[][]> {
    const key = (t: string) => JSON.stringify(["embed", this.model, t]);
    const known = new Map<string, Promise<number[]>>();
    const missing: string[] = [];
    for (const t of new Set(texts)) {
      const hit = this.cache?.get(key(t)) as Promise<number[]> | undefined;
      if (hit) {
        this.stats.cached++;
        known.set(t, hit);
      } else missing.push(t);
    }
    for (let b = 0; b < missing.length; b += EMBED_BATCH) {
      const inputs = missing.slice(b, b + EMBED_BATCH);
      const batch = this.limit(async () => {
        this.stats.requests++;
        // floats asked for explicitly: the client's default is base64, which not every compatible server implements
        const r = await this.client.embeddings.create({ model: this.model, input: inputs, encoding_format: "float" });
        if (r.data.length !== inputs.length) throw new Error(`${this.baseUrl} (${this.model}): ${r.data.length} embeddings for ${inputs.length} inputs`);
        const out = new Array<number[]>(inputs.length);
        for (const d of r.data) out[d.index] = d.embedding as number[];
        return out;
      });
      inputs.forEach((t, i) => {
        const p = batch.then((vs) => vs[i]!);
        known.set(t, p);
        this.remember(key(t), p);
      });
    }
    return Promise.all(texts.map((t) => known.get(t)!));
  }
}

const shared = new Map<string, Endpoint>();

/** The process-wide endpoint for these options (one limit and one cache per base URL, model and key variable). */
export function endpoint(opts: EndpointOptions): Endpoint {
  const key = JSON.stringify([opts.baseUrl ?? null, opts.model, opts.apiKeyEnv ?? null, opts.concurrency ?? null, opts.maxRetries ?? null, opts.timeoutMs ?? null, opts.cache ?? true]);
  let e = shared.get(key);
  if (!e) shared.set(key, (e = new Endpoint(opts)));
  return e;
}
