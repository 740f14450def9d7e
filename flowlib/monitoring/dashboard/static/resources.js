// flowlib dashboard: resource plots (CPU percent and resident memory over time).
// Written for this package; no libraries. Loaded before app.js, whose helpers
// (h, api, show, setCrumbs, follow, enc) it uses when its functions run.
//   #/run/ID/resources      per-node CPU and memory of one run
//   task page hook          per-try CPU and memory (resourcesForTask)
"use strict";

function lineChart(id, title, series, unit) {
  // series: [{name, points: [[t, value], ...]}]; one polyline per series, hand-drawn SVG
  const W = 640, H = 180, P = 36, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("id", id); svg.setAttribute("class", "resource-chart");
  const all = series.flatMap((s) => s.points).filter((p) => p[1] !== null);
  const text = (x, y, s) => { const el = document.createElementNS(ns, "text"); el.setAttribute("x", x); el.setAttribute("y", y); el.setAttribute("font-size", "11"); el.textContent = s; svg.append(el); };
  text(P, 14, title);
  if (!all.length) { text(P, H / 2, "no samples"); return svg; }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const ymax = Math.max(...all.map((p) => p[1]), 1e-9);
  const colors = ["#2f6fdb", "#c62828", "#2e8540", "#b7791f", "#6a1b9a", "#00838f"];
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => p[1] !== null).map((p) =>
      [P + (W - 2 * P) * (p[0] - t0) / Math.max(t1 - t0, 1e-9), H - P - (H - 2 * P) * p[1] / ymax].map((v) => v.toFixed(1)).join(","));
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" ")); line.setAttribute("fill", "none");
    line.setAttribute("stroke", colors[i % colors.length]); line.setAttribute("stroke-width", "2");
    line.setAttribute("data-series", s.name);
    const tip = document.createElementNS(ns, "title"); tip.textContent = s.name; line.append(tip);
    svg.append(line);
    text(W - P - 160, 14 + 12 * i, s.name);
  });
  text(2, P, unit(ymax));
  text(2, H - P, unit(0));
  text(P, H - 8, new Date(t0 * 1000).toLocaleTimeString() + " … " + new Date(t1 * 1000).toLocaleTimeString());
  return svg;
}

const fmtPercent = (v) => v.toFixed(0) + " %";
const fmtBytes = (v) => (v >= 1 << 30 ? (v / (1 << 30)).toFixed(1) + " GiB" : (v / (1 << 20)).toFixed(0) + " MiB");

async function pageResources(runId) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"],
    ["workers", "#/run/" + enc(runId) + "/workers"], ["resources", "#/run/" + enc(runId) + "/resources"]]);
  const d = await api("/api/runs/" + enc(runId) + "/resources");
  const hosts = Object.keys(d.nodes).sort();
  show(h("h1", {}, "Resources"),
    hosts.length ? [
      h("p", { class: "muted" }, "Summed over the running tasks of each node, from the worker pools' samples."),
      lineChart("resource-cpu", "CPU (percent of one core)", hosts.map((n) => ({ name: n, points: d.nodes[n].map((p) => [p[0], p[1]]) })), fmtPercent),
      lineChart("resource-rss", "Resident memory", hosts.map((n) => ({ name: n, points: d.nodes[n].map((p) => [p[0], p[2]]) })), fmtBytes),
    ] : h("p", { class: "muted", id: "no-resources" }, "No resource samples in this run (resource monitoring covers high-throughput and MPI worker pools)."));
}

async function resourcesForTask(runId, taskId) {
  // The task page's resource section (an element, empty when the task has no samples).
  const d = await api("/api/runs/" + enc(runId) + "/tasks/" + taskId + "/resources");
  const tries = Object.keys(d.tries).sort((a, b) => a - b);
  if (!tries.length) return h("div", { id: "task-resources" });
  const series = (key) => tries.map((t) => ({ name: "try " + t, points: d.tries[t].map((s) => [s.timestamp, s[key]]) }));
  const peak = (t, key) => Math.max(...d.tries[t].map((s) => s[key] || 0));
  return h("div", { id: "task-resources" }, h("h2", {}, "Resources"),
    h("table", { id: "try-resources" }, h("tr", {}, ["try", "host", "samples", "peak CPU", "peak memory", "CPU time"].map((c) => h("th", {}, c))),
      tries.map((t) => { const s = d.tries[t], z = s[s.length - 1];
        return h("tr", {}, h("td", {}, t), h("td", {}, z.hostname || ""), h("td", {}, s.length), h("td", {}, fmtPercent(peak(t, "cpu_percent"))),
          h("td", {}, fmtBytes(peak(t, "memory_resident"))), h("td", {}, ((z.time_user || 0) + (z.time_system || 0)).toFixed(2) + " s")); })),
    lineChart("task-cpu", "CPU (percent of one core)", series("cpu_percent"), fmtPercent),
    lineChart("task-rss", "Resident memory", series("memory_resident"), fmtBytes));
}
