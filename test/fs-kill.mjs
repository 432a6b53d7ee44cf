// Preload (node --import) for the kill tests: counts the process's file-system calls that change anything under
// AHA_FS_ROOT (opening for writing, writes, syncs, renames, removals, folder creation, copies) and kills the process
// with SIGKILL just before the AHA_KILL_AT-th one, as `kill -9` from outside would at that moment. With AHA_FS_LOG
// set, each such call is appended to that file ("<call> <path>"), so that a run lists the moments a trial can pick.
// It wraps node:fs itself, so it needs nothing from the code under test (and works on any version of it). Plain
// JavaScript: it loads before any TypeScript loader.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { resolve, sep } from "node:path";

const root = process.env.AHA_FS_ROOT && resolve(process.env.AHA_FS_ROOT);
const at = Number(process.env.AHA_KILL_AT ?? 0);
const log = process.env.AHA_FS_LOG;

if (root && (at || log)) {
  const append = fs.appendFileSync;
  const under = (p) => typeof p === "string" && (resolve(p) === root || resolve(p).startsWith(root + sep));
  const fds = new Map(); // descriptors opened under root → their paths
  let n = 0;
  const hit = (call, path) => {
    n++;
    if (log) append(log, `${call} ${path}\n`);
    if (n === at) process.kill(process.pid, "SIGKILL");
  };
  const wrap = (call, touches) => {
    const orig = fs[call];
    fs[call] = function (...args) {
      const path = touches(args);
      if (path !== null) hit(call, path);
      const r = orig.apply(this, args);
      if (call === "openSync" && path !== null) fds.set(r, path);
      if (call === "closeSync") fds.delete(args[0]);
      return r;
    };
  };
  const byPath = (args) => (under(args[0]) ? args[0] : under(args[1]) ? args[1] : null);
  const byFd = (args) => fds.get(args[0]) ?? null;
  wrap("openSync", (args) => (under(args[0]) && /[wa+]/.test(String(args[1] ?? "r")) ? args[0] : null));
  for (const call of ["writeFileSync", "appendFileSync", "renameSync", "rmSync", "unlinkSync", "mkdirSync", "copyFileSync"]) wrap(call, byPath);
  for (const call of ["writeSync", "fsyncSync", "closeSync"]) wrap(call, byFd);
  syncBuiltinESMExports();
}
