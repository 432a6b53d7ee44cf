#!/usr/bin/env node
// Entry point of the `aha` command: runs the built JavaScript (dist/cli/main.js). tsx is loaded only where a user's
// .ts file is read (src/modules/user-module.ts), never for aha itself.
// In a checkout (where dist/.build-stamp exists: the package leaves it out) whose src/ changed after the last build,
// or before any build, it runs src/ through tsx instead, so a developer never runs stale code; `npm run build`
// brings dist/ up to date.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const stamp = join(root, "dist", ".build-stamp");

function newer(dir, than) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory() ? newer(p, than) : statSync(p).mtimeMs > than) return true;
  }
  return false;
}

const checkout = existsSync(join(root, "src", "cli", "main.ts")) && (!existsSync(join(root, "dist", "cli", "main.js")) || existsSync(stamp));
if (checkout && (!existsSync(stamp) || newer(join(root, "src"), statSync(stamp).mtimeMs))) {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/cli/main.ts");
} else {
  await import("../dist/cli/main.js");
}
