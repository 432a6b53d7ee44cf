// The dashboard's HTML: one self-contained page with uPlot's script and stylesheet inlined (no CDN: it works offline
// and behind firewalls), its own styles, and the client script (client.ts).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { CLIENT_JS } from "./client.ts";

const require = createRequire(import.meta.url);

/** The page, with `</script>` sequences in inlined code escaped. */
export function dashboardPage(title: string): string {
  const uplotJs = readFileSync(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8");
  const uplotCss = readFileSync(require.resolve("uplot/dist/uPlot.min.css"), "utf8");
  const script = (s: string) => `<script>${s.replace(/<\/script/gi, "<\\/script")}</script>`;
  const esc = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${uplotCss}</style>
<style>
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111827; background: #f9fafb; }
header { padding: 12px 20px; background: #111827; color: #f9fafb; }
header h1 { font-size: 16px; margin: 0 0 6px; }
#runs .run { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
#runs .steps { font-weight: 600; }
#runs .live { color: #4ade80; font-weight: 600; }
#runs .done, #runs .dir { color: #9ca3af; }
.swatch { display: inline-block; width: 24px; border-color: #f9fafb !important; }
main { padding: 12px 20px; }
h2 { font-size: 14px; margin: 18px 0 8px; }
#charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { background: white; border: 1px solid #e5e7eb; border-radius: 6px; padding: 6px 8px; }
.chart h3 { font-size: 12px; margin: 0 0 4px; color: #374151; }
.uplot .legend { font-size: 11px; }
table { border-collapse: collapse; background: white; font-size: 12px; }
th, td { border: 1px solid #e5e7eb; padding: 3px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pos { color: #15803d; } td.neg { color: #b91c1c; }
td.prompt { max-width: 260px; color: #6b7280; }
td.completion { max-width: 640px; font-family: ui-monospace, monospace; font-size: 11px; }
td.completion div { white-space: pre-wrap; max-height: 4.2em; overflow: auto; }
details summary { cursor: pointer; font-weight: 600; font-size: 14px; margin: 18px 0 8px; }
tr.differs th, tr.differs td { background: #fef9c3; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
.empty { color: #6b7280; }
#error { color: #b91c1c; }
.smooth { font-weight: normal; font-size: 12px; margin-left: 16px; color: #374151; }
.smooth input { vertical-align: middle; width: 140px; }
#evals { display: flex; gap: 16px; flex-wrap: wrap; }
</style></head>
<body>
<header><h1>${esc(title)}</h1><div id="runs"></div><div id="error"></div></header>
<main>
<h2>Curves <label class="smooth">smoothing <input id="smooth" type="range" min="0" max="0.99" step="0.01" value="0"> <span id="smooth-value">0</span></label></h2><div id="charts"></div>
<h2>Newest completions</h2><p id="completions-empty" class="empty">none logged yet (completions.jsonl)</p><table id="completions"></table>
<h2>Held-out evaluations</h2><p id="evals-empty" class="empty">none logged (eval/… metrics or summary.json)</p><div id="evals"></div>
<details id="config-box"><summary>Config</summary><p id="config-empty" class="empty">no run_config.json in the run folder</p><table id="config"></table></details>
</main>
${script(uplotJs)}
${script(CLIENT_JS)}
</body></html>
`;
}
