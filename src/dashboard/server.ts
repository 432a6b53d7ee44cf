// The training dashboard's HTTP server (node:http): the page, the list of runs, and per run the metric rows after a
// byte offset, the newest completions, the config and the summary, all read from the run folders on each poll, so a
// live run and a finished one (of any age) are served the same way. Binds 127.0.0.1 unless told otherwise.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, resolve } from "node:path";
import { dashboardPage } from "./page.ts";
import { lastUpdate, readJsonFile, readMetrics, tailCompletions } from "./run-files.ts";

export interface DashboardOptions {
  /** run folders (output_dir of `aha train`) */
  runs: string[];
  /** default 6006; 0 picks a free port */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** newest completions sent per run (default 24) */
  completions?: number;
}

export interface RunningDashboard {
  url: string;
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  if (o.runs.length === 0) throw new Error("dashboard: give at least one run folder");
  const dirs = o.runs.map((d) => resolve(d));
  const names = dirs.map((d, i) => (dirs.filter((x) => basename(x) === basename(d)).length > 1 ? `${basename(d)} (${i + 1})` : basename(d)));
  const page = dashboardPage(`aha dashboard: ${names.join(", ")}`);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const send = (status: number, type: string, body: string) => { res.writeHead(status, { "content-type": type, "cache-control": "no-store" }); res.end(body); };
    try {
      if (url.pathname === "/") return send(200, "text/html; charset=utf-8", page);
      if (url.pathname === "/api/runs") return send(200, "application/json", JSON.stringify(dirs.map((dir, id) => ({ id, name: names[id], dir }))));
      const m = /^\/api\/run\/(\d+)$/.exec(url.pathname);
      if (m && Number(m[1]) < dirs.length) {
        const dir = dirs[Number(m[1])];
        const metrics = readMetrics(dir, Math.max(0, Number(url.searchParams.get("offset")) || 0));
        return send(200, "application/json", JSON.stringify({
          ...metrics, completions: tailCompletions(dir, o.completions ?? 24),
          config: readJsonFile(dir, "run_config.json"), summary: readJsonFile(dir, "summary.json"), updated: lastUpdate(dir),
        }));
      }
      send(404, "text/plain", "not found");
    } catch (e) {
      send(500, "text/plain", String((e as Error).message));
    }
  });
  await new Promise<void>((ok, fail) => {
    server.once("error", fail);
    server.listen(o.port ?? 6006, o.host ?? "127.0.0.1", () => { server.off("error", fail); ok(); });
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}/`,
    close: () => new Promise((r) => { server.close(() => r()); server.closeAllConnections(); }),
  };
}
