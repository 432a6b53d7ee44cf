// `aha serve` as a child process (the CLI itself, not startServer): spawned with `--port 0 --quiet`, resolved with its
// /v1 URL once it prints where it listens, rejected with its stderr if it exits first. Shared by the tests that run the
// command (serve, hub-cache).
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = join(fileURLToPath(new URL("..", import.meta.url)), "bin", "aha.js");

export interface ServeProcess { child: ChildProcess; url: string; stderr(): string }

export async function spawnServe(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const child = spawn(process.execPath, [bin, "serve", ...args, "--port", "0", "--quiet"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => { err += d; });
  const url = await new Promise<string>((ok, fail) => {
    let out = "";
    child.stdout!.on("data", (d) => { out += d; const m = /listening on (\S+)/.exec(out); if (m) ok(m[1]); });
    child.on("exit", (c) => fail(new Error(`aha serve exited ${c}: ${err}`)));
  });
  return { child, url, stderr: () => err };
}
