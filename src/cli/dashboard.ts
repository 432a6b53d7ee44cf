// `aha dashboard DIR…`: the training dashboard for finished (or running) runs, side by side, until Ctrl-C; and the
// parsing of `aha train --dashboard [port]`.
import type { Command } from "commander";
import { Option } from "commander";
import { startDashboard } from "../dashboard/server.ts";

export function registerDashboard(program: Command, int: (v: string) => number): void {
  program.command("dashboard")
    .description("open the dashboard of runs (their output_dir folders) side by side: curves, completions, evals, configs")
    .argument("<runs...>", "run folders (each with metrics.jsonl)")
    .addOption(new Option("--port <port>", "port (0: any free port)").argParser(int).default(6006))
    .option("--host <host>", "address to bind", "127.0.0.1")
    .action(async (runs: string[], o) => {
      const d = await startDashboard({ runs, port: o.port, host: o.host });
      process.stdout.write(`aha dashboard: ${d.url} (Ctrl-C to stop)\n`);
      const stop = () => d.close().then(() => process.exit(0));
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
}

/** `--dashboard [port]` of `aha train` as config overrides (report_to, dashboard_port). */
export function dashboardOverrides(flag: boolean | string | undefined): Record<string, unknown> {
  if (flag === undefined || flag === false) return {};
  const port = flag === true ? undefined : Number(flag);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) throw new Error(`--dashboard ${flag}: not a port number`);
  return { reportTo: "dashboard", ...(port !== undefined ? { dashboardPort: port } : {}) };
}
