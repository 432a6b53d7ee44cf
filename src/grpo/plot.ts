// A reward curve as a self-contained SVG (no plotting library needed for one line chart): the mean reward per
// step, a moving average, and optional extra series, from a run's metrics.jsonl. Rewritten at every logged step
// (under a temporary name, then renamed, so a viewer never reads half a file).
import { readFileSync } from "node:fs";
import { writeFileAtomic } from "../files/atomic.ts";

export interface PlotOptions {
  /** metric names to draw (default ["reward"]) */
  keys?: string[];
  title?: string;
  /** moving-average window (default 10) */
  smooth?: number;
}

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

export function plotMetrics(metricsPath: string, outSvg: string, o: PlotOptions = {}): void {
  const rows = readFileSync(metricsPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, number>);
  const keys = o.keys ?? ["reward"];
  const W = 640, H = 320, L = 50, R = 150, T = 30, B = 40;
  const steps = rows.map((r) => r.step);
  const series = keys.map((k) => rows.map((r) => r[k]).map((v) => (typeof v === "number" ? v : NaN)));
  const all = series.flat().filter((v) => Number.isFinite(v));
  const ymin = Math.min(0, ...all), ymax = Math.max(...all, ymin + 1e-9);
  const xmax = Math.max(1, ...steps);
  const x = (s: number) => L + ((W - L - R) * s) / xmax;
  const y = (v: number) => T + (H - T - B) * (1 - (v - ymin) / (ymax - ymin));
  const k = o.smooth ?? 10;
  const path = (vals: number[]) => vals.map((v, i) => (Number.isFinite(v) ? `${x(steps[i]).toFixed(1)},${y(v).toFixed(1)}` : null)).filter(Boolean).join(" ");
  const smooth = (vals: number[]) => vals.map((_, i) => {
    const w = vals.slice(Math.max(0, i - k + 1), i + 1).filter(Number.isFinite);
    return w.length ? w.reduce((a, b) => a + b, 0) / w.length : NaN;
  });
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${L}" y="18" font-size="13">${o.title ?? "reward"}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = ymin + ((ymax - ymin) * i) / 4;
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e7eb"/><text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">step</text><text x="${W - R}" y="${H - B + 14}" text-anchor="end">${xmax}</text><text x="${L}" y="${H - B + 14}">0</text>`);
  series.forEach((vals, i) => {
    const c = COLORS[i % COLORS.length];
    parts.push(`<polyline fill="none" stroke="${c}" stroke-opacity="0.3" points="${path(vals)}"/>`);
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${path(smooth(vals))}"/>`);
    parts.push(`<line x1="${W - R + 10}" x2="${W - R + 30}" y1="${T + 16 * i}" y2="${T + 16 * i}" stroke="${c}" stroke-width="2"/><text x="${W - R + 34}" y="${T + 16 * i + 4}">${keys[i]}</text>`);
  });
  parts.push("</svg>");
  writeFileAtomic(outSvg, parts.join("\n") + "\n");
}
