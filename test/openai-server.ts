// A small local server that follows the OpenAI API (POST /v1/chat/completions, POST /v1/embeddings) for the judge and
// embedding tests, with a judge that reads markers in what it is shown and fault modes.
// The judge: a response containing GOOD scores 9, OK 5, BAD 1; YES / NO answer yes / no; GARBLE gets a reply with no
// score; for a group prompt ("Response k:" blocks) the scores of each block, as JSON. Faults, by marker in the
// request: RATE429 (a 429 the first time this exact request is seen), FAIL500 (a 500 the first time), ALWAYS500,
// SLOW (the answer comes after `slowMs`). Embeddings: the counts of the letters a–z in the text (so texts that share
// letters are close), which a test can compute on its own; as floats, or base64 float32 when asked (as OpenAI does).
// Is: a test double of an OpenAI-compatible endpoint. Is not: a model.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export interface FakeOpenAI {
  url: string;
  /** Requests received, by path; chat bodies in order. */
  requests: { path: string; body: { model: string; messages?: { role: string; content: string }[]; input?: string[]; encoding_format?: string } }[];
  /** Most requests in flight at once. */
  maxInFlight: number;
  close(): Promise<void>;
}

export function letterCounts(text: string): number[] {
  const v = new Array(26).fill(0);
  for (const ch of text.toLowerCase()) {
    const k = ch.charCodeAt(0) - 97;
    if (k >= 0 && k < 26) v[k]++;
  }
  return v;
}

function scoreOf(text: string): string {
  if (text.includes("GARBLE")) return "I would rather not say.";
  if (text.includes("YES")) return "Yes.";
  if (text.includes("NO")) return "No";
  if (text.includes("GOOD")) return "The response is right. Score: 9";
  if (text.includes("BAD")) return "Score: 1/10";
  if (text.includes("OK")) return "5";
  return "Score: 0";
}

function groupReply(text: string): string {
  const blocks = text.split(/Response \d+:\n/).slice(1);
  if (text.includes("GARBLE")) return "They are all fine.";
  return `Here you go: {"scores": [${blocks.map((b) => (b.includes("GOOD") ? 9 : b.includes("BAD") ? 1 : 5)).join(", ")}]}`;
}

export async function startFakeOpenAI(opts: { slowMs?: number } = {}): Promise<FakeOpenAI> {
  const seen = new Set<string>();
  let inFlight = 0;
  const state: Omit<FakeOpenAI, "url" | "close"> = { requests: [], maxInFlight: 0 };
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw || "{}");
    const path = (req.url ?? "").replace(/\?.*/, "");
    state.requests.push({ path, body });
    const text = JSON.stringify(body.messages ?? body.input ?? "");
    const first = !seen.has(raw);
    seen.add(raw);
    await new Promise((r) => setTimeout(r, 5)); // let requests overlap, so the concurrency limit is seen
    if (text.includes("SLOW")) await new Promise((r) => setTimeout(r, opts.slowMs ?? 3000));
    if (res.destroyed) return;
    if (text.includes("RATE429") && first) return send(res, 429, { error: { message: "rate limited", type: "rate_limit" } }, { "retry-after-ms": "20" });
    if ((text.includes("FAIL500") && first) || text.includes("ALWAYS500")) return send(res, 500, { error: { message: "server error", type: "server_error" } }, { "retry-after-ms": "20" });
    if (path.endsWith("/chat/completions")) {
      const content = body.messages.map((m: { content: string }) => m.content).join("\n");
      const reply = /Response \d+:\n/.test(content) ? groupReply(content) : scoreOf(content);
      return send(res, 200, {
        id: `chatcmpl-${state.requests.length}`, object: "chat.completion", created: Math.floor(Date.now() / 1000), model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop", logprobs: null }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
    }
    if (path.endsWith("/embeddings")) {
      const input: string[] = Array.isArray(body.input) ? body.input : [body.input];
      const encode = (v: number[]) => (body.encoding_format === "base64" ? Buffer.from(new Float32Array(v).buffer).toString("base64") : v);
      return send(res, 200, { object: "list", model: body.model, data: input.map((t, index) => ({ object: "embedding", index, embedding: encode(letterCounts(t)) })), usage: { prompt_tokens: 1, total_tokens: 1 } });
    }
    send(res, 404, { error: { message: `no route ${path}` } });
  };
  const server: Server = createServer((req, res) => {
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.on("close", () => inFlight--);
    handle(req, res).catch((e) => send(res, 500, { error: { message: String(e) } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/v1`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  }) as FakeOpenAI;
}
