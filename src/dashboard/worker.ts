// The dashboard server in a worker thread, for a training run in the same process: the trainer's steps block its
// thread for seconds at a time, and the page must answer meanwhile. startDashboardWorker() starts it and resolves
// with its URL; stop() ends the worker.
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { startDashboard, type DashboardOptions } from "./server.ts";
import { ownModule } from "../package.ts";

if (!isMainThread && workerData?.ahaDashboard) {
  startDashboard(workerData.ahaDashboard as DashboardOptions)
    .then((d) => parentPort!.postMessage({ url: d.url }))
    .catch((e: Error) => parentPort!.postMessage({ error: e.message }));
}

export async function startDashboardWorker(o: DashboardOptions): Promise<{ url: string; stop: () => Promise<void> }> {
  const self = ownModule("dashboard/worker.ts", import.meta.url); // this file (the ESM build's from the CommonJS bundle)
  // from the TypeScript sources the worker needs tsx's loader too; from compiled JavaScript it does not
  const code = self.pathname.endsWith(".ts")
    ? `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => m.register()).then(() => import(${JSON.stringify(self.href)}))`
    : `import(${JSON.stringify(self.href)})`;
  const w = new Worker(code, { eval: true, workerData: { ahaDashboard: o } });
  w.unref();
  const msg = await new Promise<{ url?: string; error?: string }>((ok, fail) => {
    w.once("message", ok);
    w.once("error", fail);
    w.once("exit", (c) => fail(new Error(`the dashboard worker exited (${c})`)));
  });
  if (msg.error) { await w.terminate(); throw new Error(`dashboard: ${msg.error}`); }
  return { url: msg.url!, stop: async () => { await w.terminate(); } };
}
