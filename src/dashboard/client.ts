// The dashboard page's own script (runs in the browser; uPlot is inlined before it): polls /api/run/<i> for each
// run, keeps the metric rows, and draws one uPlot chart per group of metrics (every run in the same chart, a line
// style per run), the newest completions with their rewards and advantages, the held-out evaluations and the configs
// side by side. Charts of metrics a run does not log are left out. window.aha exposes the state for browser tests.
// Kept as a string (not a .ts module) because it is sent to the browser as it is; it uses no template literals.
export const CLIENT_JS = String.raw`
"use strict";
var COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
var DASH = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
var CHARTS = [
  { id: "reward", title: "Reward (total and per function)", keys: function (ks) { return ["reward"].concat(ks.filter(function (k) { return /^rewards\/.+\/mean$/.test(k); })); } },
  { id: "reward_std", title: "Reward spread", keys: ["reward_std", "frac_reward_zero_std"] },
  { id: "loss", title: "Loss", keys: ["loss"] },
  { id: "kl", title: "KL to the reference", keys: ["kl"] },
  { id: "entropy", title: "Entropy", keys: ["entropy"] },
  { id: "length", title: "Completion length (tokens)", keys: ["completions/mean_length", "completions/min_length", "completions/max_length"] },
  { id: "clip", title: "Clip ratios", keys: ["clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "completions/clipped_ratio"] },
  { id: "grad_norm", title: "Grad norm", keys: ["grad_norm"] },
  { id: "lr", title: "Learning rate", keys: ["learning_rate"] },
  { id: "step_time", title: "Step time (s)", keys: ["step_time"] },
  { id: "tokens_per_second", title: "Tokens / s", keys: ["tokens_per_second"] },
  { id: "memory", title: "Memory (GiB)", keys: ["memory/allocated_gb", "memory/peak_gb", "memory/rss_gb"] },
  { id: "eval", title: "Held-out evaluation", keys: function (ks) { return ks.filter(function (k) { return k.indexOf("eval/") === 0; }); } },
];
var runs = [];
var charts = {};
window.aha = { runs: runs, charts: charts, polls: 0 };

function el(tag, attrs, text) {
  var e = document.createElement(tag);
  for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v !== "number") return typeof v === "object" ? JSON.stringify(v) : String(v);
  if (Number.isInteger(v)) return String(v);
  var a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a < 1 ? 4 : 3).replace(/0+$/, "").replace(/\.$/, "");
}

// tokens/s where the trainer did not log it (older runs): new tokens over the wall time of the steps in between
function derive(run) {
  var prev = null;
  run.rows.forEach(function (r) {
    if (typeof r.tokens_per_second !== "number" && prev && typeof r.num_tokens === "number" && typeof prev.num_tokens === "number" && r.step_time > 0)
      r.tokens_per_second = (r.num_tokens - prev.num_tokens) / (r.step_time * Math.max(1, r.step - prev.step));
    prev = r;
  });
}

function keysOf(chart) {
  var all = {};
  runs.forEach(function (run) { run.rows.forEach(function (r) { for (var k in r) if (typeof r[k] === "number") all[k] = 1; }); });
  var ks = typeof chart.keys === "function" ? chart.keys(Object.keys(all).sort()) : chart.keys;
  return ks.filter(function (k) { return all[k]; });
}

// TensorBoard's smoothing: a debiased exponential moving average, weight from the page's slider (0 = raw values)
function smooth(ys) {
  var w = Number(document.getElementById("smooth").value), acc = 0, n = 0;
  if (!(w > 0)) return ys;
  return ys.map(function (y) {
    if (y === null) return null;
    acc = acc * w + (1 - w) * y;
    n++;
    return acc / (1 - Math.pow(w, n));
  });
}

function chartData(keys) {
  var steps = {};
  runs.forEach(function (run) { run.rows.forEach(function (r) { if (typeof r.step === "number") steps[r.step] = 1; }); });
  var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
  var data = [xs], series = [{ label: "step" }];
  runs.forEach(function (run, ri) {
    var byStep = {};
    run.rows.forEach(function (r) { byStep[r.step] = r; });
    keys.forEach(function (k, ki) {
      if (!run.rows.some(function (r) { return typeof r[k] === "number"; })) return; // a metric this run does not log
      data.push(smooth(xs.map(function (s) { var r = byStep[s]; return r && typeof r[k] === "number" && isFinite(r[k]) ? r[k] : null; })));
      series.push({ label: (runs.length > 1 ? run.name + " · " : "") + k, stroke: COLORS[ki % COLORS.length], dash: DASH[ri % DASH.length], width: 1.5, spanGaps: true });
    });
  });
  return { data: data, series: series };
}

function drawCharts() {
  var grid = document.getElementById("charts");
  CHARTS.forEach(function (c) {
    var keys = keysOf(c), sig = keys.join("|") + "#" + runs.length;
    var have = charts[c.id];
    if (keys.length === 0) { if (have) { have.plot.destroy(); have.box.remove(); delete charts[c.id]; } return; }
    var d = chartData(keys);
    if (have && have.sig === sig) { have.plot.setData(d.data); have.data = d.data; return; }
    if (have) { have.plot.destroy(); have.box.remove(); }
    var box = el("section", { class: "chart", id: "chart-" + c.id });
    box.appendChild(el("h3", {}, c.title));
    grid.appendChild(box);
    var opts = { width: 420, height: 220, series: d.series, scales: { x: { time: false } }, axes: [{ label: "step" }, { size: 60, values: function (u, vals) { return vals.map(fmt); } }], legend: { live: false } };
    charts[c.id] = { sig: sig, box: box, plot: new uPlot(opts, d.data, box), data: d.data };
  });
  // keep the charts in the order of CHARTS
  CHARTS.forEach(function (c) { if (charts[c.id]) grid.appendChild(charts[c.id].box); });
}

function drawHeader() {
  var h = document.getElementById("runs");
  h.textContent = "";
  runs.forEach(function (run, i) {
    var last = run.rows.length ? run.rows[run.rows.length - 1] : null;
    var max = run.config && run.config.max_steps > 0 ? " / " + run.config.max_steps : "";
    var live = run.updated && Date.now() - run.updated < 30000;
    var card = el("div", { class: "run" });
    card.appendChild(el("span", { class: "swatch", style: "border-bottom: 3px " + (i === 0 ? "solid" : i === 1 ? "dashed" : "dotted") + " #333" }));
    card.appendChild(el("b", {}, run.name));
    card.appendChild(el("span", { id: "steps-" + i, class: "steps" }, last ? String(last.step) : "0"));
    card.appendChild(el("span", {}, max + " steps"));
    if (last && typeof last.reward === "number") card.appendChild(el("span", {}, "reward " + fmt(last.reward)));
    card.appendChild(el("span", { class: live ? "live" : "done" }, live ? "live" : run.updated ? "updated " + new Date(run.updated).toLocaleString() : "no metrics yet"));
    card.appendChild(el("span", { class: "dir" }, run.dir));
    h.appendChild(card);
  });
}

function drawCompletions() {
  var all = [];
  runs.forEach(function (run) { run.completions.forEach(function (c) { all.push({ run: run.name, c: c }); }); });
  all.sort(function (a, b) { return (b.c.step || 0) - (a.c.step || 0); });
  all = all.slice(0, 24);
  var names = {};
  all.forEach(function (x) { for (var k in x.c.rewards || {}) names[k] = 1; });
  var rewardNames = Object.keys(names);
  var t = document.getElementById("completions");
  t.textContent = "";
  var head = el("tr");
  (runs.length > 1 ? ["run"] : []).concat(["step", "prompt", "completion"], rewardNames, ["reward", "advantage"]).forEach(function (h) { head.appendChild(el("th", {}, h)); });
  t.appendChild(head);
  all.forEach(function (x) {
    var c = x.c, tr = el("tr", { "data-step": String(c.step) });
    if (runs.length > 1) tr.appendChild(el("td", {}, x.run));
    tr.appendChild(el("td", { class: "num" }, fmt(c.step)));
    var p = typeof c.prompt === "string" ? c.prompt : Array.isArray(c.prompt)
      ? c.prompt.filter(function (m) { return m && m.role !== "system"; }).map(function (m) { return (typeof m.content === "string" ? m.content : JSON.stringify(m.content)); }).join(" / ")
      : JSON.stringify(c.prompt);
    tr.appendChild(el("td", { class: "prompt", title: p }, p.length > 160 ? "…" + p.slice(-160) : p));
    var comp = typeof c.completion === "string" ? c.completion : JSON.stringify(c.completion);
    var cell = el("td", { class: "completion" });
    cell.appendChild(el("div", {}, comp));
    tr.appendChild(cell);
    rewardNames.forEach(function (k) { tr.appendChild(el("td", { class: "num" }, fmt((c.rewards || {})[k]))); });
    tr.appendChild(el("td", { class: "num" }, fmt(c.reward)));
    var adv = el("td", { class: "num " + (c.advantage > 0 ? "pos" : c.advantage < 0 ? "neg" : "") }, fmt(c.advantage));
    tr.appendChild(adv);
    t.appendChild(tr);
  });
  document.getElementById("completions-empty").style.display = all.length ? "none" : "";
}

function drawEvals() {
  var box = document.getElementById("evals");
  box.textContent = "";
  runs.forEach(function (run) {
    var s = run.summary;
    if (!s) return;
    var t = el("table");
    t.appendChild(el("caption", {}, run.name + ": summary.json"));
    Object.keys(s).forEach(function (k) { var tr = el("tr"); tr.appendChild(el("th", {}, k)); tr.appendChild(el("td", {}, fmt(s[k]))); t.appendChild(tr); });
    box.appendChild(t);
  });
  document.getElementById("evals-empty").style.display = box.childNodes.length || charts.eval ? "none" : "";
}

function drawConfig() {
  var t = document.getElementById("config");
  t.textContent = "";
  var keys = {};
  runs.forEach(function (run) { for (var k in run.config || {}) keys[k] = 1; });
  var head = el("tr");
  head.appendChild(el("th", {}, "option"));
  runs.forEach(function (run) { head.appendChild(el("th", {}, run.name)); });
  t.appendChild(head);
  Object.keys(keys).sort().forEach(function (k) {
    var vals = runs.map(function (run) { return run.config ? fmt(run.config[k]) : ""; });
    var tr = el("tr", { class: runs.length > 1 && vals.some(function (v) { return v !== vals[0]; }) ? "differs" : "" });
    tr.appendChild(el("th", {}, k));
    vals.forEach(function (v) { tr.appendChild(el("td", {}, v)); });
    t.appendChild(tr);
  });
  document.getElementById("config-empty").style.display = Object.keys(keys).length ? "none" : "";
}

function poll() {
  Promise.all(runs.map(function (run) {
    return fetch("api/run/" + run.id + "?offset=" + run.offset).then(function (r) { return r.json(); }).then(function (d) {
      if (d.reset) run.rows = [];
      run.rows = run.rows.concat(d.rows);
      run.offset = d.offset;
      run.completions = d.completions;
      run.config = d.config;
      run.summary = d.summary;
      run.updated = d.updated;
      derive(run);
    });
  })).then(function () {
    drawHeader(); drawCharts(); drawCompletions(); drawEvals(); drawConfig();
    window.aha.polls++;
  }).catch(function (e) { document.getElementById("error").textContent = "cannot reach the dashboard server: " + e; })
    .then(function () { setTimeout(poll, window.AHA_POLL_MS || 1500); });
}

document.getElementById("smooth").addEventListener("input", function () {
  document.getElementById("smooth-value").textContent = this.value;
  drawCharts();
});

fetch("api/runs").then(function (r) { return r.json(); }).then(function (list) {
  list.forEach(function (r) { runs.push({ id: r.id, name: r.name, dir: r.dir, rows: [], offset: 0, completions: [], config: null, summary: null, updated: 0 }); });
  poll();
});
`;
