// Fault injection for the kill tests: named points on the write paths (inside checkpoint, final and export saves,
// between the renames of a folder swap, around log appends) where a test can make the process kill itself with
// SIGKILL, exactly as `kill -9` from outside would, at a chosen moment.
// Is: off unless AHA_FAULT_AT or AHA_FAULT_LOG is set (one environment read at load; a disabled point is one branch).
// AHA_FAULT_AT=k kills the process at the k-th point it passes (counting every point, 1-based); AHA_FAULT_LOG=<file>
// appends each point's name to <file> as it is passed (a run with it lists the points a trial can pick from).
// Is not: a way to simulate errors other than a kill (disk full and read-only folders are tested for real).
import { appendFileSync } from "node:fs";

const at = Number(process.env.AHA_FAULT_AT ?? 0);
const log = process.env.AHA_FAULT_LOG;
let passed = 0;

export function faultPoint(name: string): void {
  if (!at && !log) return;
  passed++;
  if (log) appendFileSync(log, `${name}\n`);
  if (passed === at) process.kill(process.pid, "SIGKILL");
}
