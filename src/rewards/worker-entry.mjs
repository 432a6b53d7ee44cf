// Worker-thread entry of the reward pool (pool.ts), in plain JavaScript because a fresh worker thread has no
// TypeScript loader: on Node 20 the parent's tsx hooks do not reach it, and `--import tsx` in its execArgv brings
// only tsx's require hook. This loads worker.ts (a build's worker.js) through tsx's tsImport, whose hooks then apply
// to everything that module imports, a user's reward files included.
import { existsSync } from "node:fs";
import { tsImport } from "tsx/esm/api";

const source = new URL("./worker.ts", import.meta.url);
const mod = await tsImport((existsSync(source) ? source : new URL("./worker.js", import.meta.url)).href, import.meta.url);
export default mod.default;
