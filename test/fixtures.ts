// Where the reference fixtures live: $AHA_FIXTURES, default test/fixtures (in the repository).
// Cases are discovered by listing folders, never by hard-coded names.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
export const FIXTURES = resolve(process.env.AHA_FIXTURES ?? join(root, "test", "fixtures"));

/** Sub-folders of `$AHA_FIXTURES/<sub>` (sorted); empty when the folder is missing. */
export function listFixtureDirs(sub: string): string[] {
  const dir = join(FIXTURES, sub);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => statSync(join(dir, n)).isDirectory())
    .sort()
    .map((n) => join(dir, n));
}

/** Model folders under tiny-models (those with a config.json). */
export function fixtureModels(): string[] {
  return listFixtureDirs("tiny-models").filter((d) => existsSync(join(d, "config.json")));
}
