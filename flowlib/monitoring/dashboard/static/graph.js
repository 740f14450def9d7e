// flowlib dashboard: the dependency-graph page (#/run/ID/graph, #/run/ID/graph?task=N).
// Written for this package; no libraries. Uses app.js's helpers (h, api, show, follow,
// setCrumbs, onStatus), loaded before it. The server bounds what it sends (queries.graph):
// a small run whole, a big one by app plus one task's neighbourhood. Layers come from
// the server (longest path from a source); this file only places and draws them.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function layered(items, layerOf, W, H) {
  const layers = new Map();
  for (const it of items) {
    const l = layerOf(it);
    if (!layers.has(l)) layers.set(l, []);
    layers.get(l).push(it);
  }
  const keys = [...layers.keys()].sort((a, b) => a - b);
  const pos = new Map();
  const width = Math.max(...[...layers.values()].map((l) => l.length), 1);
  keys.forEach((k, row) => {
    const items = layers.get(k);
    items.forEach((it, i) => pos.set(it, [40 + (i + 0.5) * W, 30 + row * H]));
  });
  return { pos, width: 80 + width * W, height: 60 + keys.length * H };
}

function drawTasks(runId, data) {
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const { pos, width, height } = layered(data.nodes, (n) => n.layer, 56, 60);
  const svg = s("svg", { id: "graph", width, height });
  for (const [a, b] of data.edges) {
    const p = pos.get(byId.get(a)), q = pos.get(byId.get(b));
    svg.append(s("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], class: "edge" }));
  }
  for (const n of data.nodes) {
    const [x, y] = pos.get(n);
    const g = s("g", { class: "node state-" + n.state + (n.id === data.task ? " chosen" : ""), "data-task-id": n.id, transform: "translate(" + x + "," + y + ")" },
      s("circle", { r: 14 }), s("text", { "text-anchor": "middle", dy: 4 }, n.id),
      s("title", {}, "task " + n.id + " " + n.app + ": " + n.state));
    g.addEventListener("click", () => { location.hash = "#/run/" + enc(runId) + "/task/" + n.id; });
    svg.append(g);
  }
  return svg;
}

function drawApps(runId, apps) {
  const index = new Map(apps.nodes.map((n, i) => [n.app, i]));
  // Layer apps by longest path, skipping edges that go back in the name order (app graphs may have cycles).
  const layer = new Map(apps.nodes.map((n) => [n.app, 0]));
  for (let pass = 0; pass < apps.nodes.length; pass++) {
    for (const e of apps.edges) {
      if (e.from === e.to || !index.has(e.from) || index.get(e.from) >= index.get(e.to)) continue;
      layer.set(e.to, Math.max(layer.get(e.to), layer.get(e.from) + 1));
    }
  }
  const { pos, width, height } = layered(apps.nodes, (n) => layer.get(n.app), 200, 90);
  const svg = s("svg", { id: "app-graph", width, height });
  const byApp = new Map(apps.nodes.map((n) => [n.app, n]));
  for (const e of apps.edges) {
    const a = byApp.get(e.from), b = byApp.get(e.to);
    if (!a || !b) continue;
    const p = pos.get(a), q = pos.get(b);
    if (a === b) svg.append(s("text", { x: p[0] + 70, y: p[1] - 18, class: "edge-label" }, "↻ " + e.count));
    else {
      svg.append(s("line", { x1: p[0], y1: p[1], x2: q[0], y2: q[1], class: "edge" }));
      svg.append(s("text", { x: (p[0] + q[0]) / 2 + 4, y: (p[1] + q[1]) / 2, class: "edge-label" }, e.count));
    }
  }
  for (const n of apps.nodes) {
    const [x, y] = pos.get(n);
    const states = Object.entries(n.states).sort().map(([k, v]) => k + " " + v).join(", ");
    const worst = n.states.failed || n.states.dep_fail ? "failed" : (Object.keys(n.states).every((k) => FINAL.has(k)) ? "exec_done" : "launched");
    const g = s("g", { class: "app-node state-" + worst, "data-app": n.app, transform: "translate(" + x + "," + y + ")" },
      s("rect", { x: -80, y: -20, width: 160, height: 40, rx: 6 }),
      s("text", { "text-anchor": "middle", dy: -4 }, n.app + " (" + n.count + ")"),
      s("text", { "text-anchor": "middle", dy: 12, class: "small" }, states.slice(0, 40)),
      s("title", {}, n.app + ": " + states));
    g.addEventListener("click", () => { location.hash = "#/run/" + enc(runId) + "/tasks?app=" + enc(n.app); });
    svg.append(g);
  }
  return svg;
}

async function pageGraph(runId, query) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"],
    ["graph", "#/run/" + enc(runId) + "/graph"], ["workers", "#/run/" + enc(runId) + "/workers"]]);
  const p = new URLSearchParams(query);
  const task = p.get("task") || "";
  const depth = p.get("depth") || "3";
  const form = h("form", { class: "filters", id: "graph-form", onsubmit: (ev) => {
      ev.preventDefault();
      const d = new FormData(form);
      location.hash = "#/run/" + enc(runId) + "/graph?task=" + enc(d.get("task")) + "&depth=" + enc(d.get("depth"));
    } },
    h("label", {}, "neighbourhood of task", h("input", { id: "g-task", name: "task", value: task, placeholder: "task id" })),
    h("label", {}, "depth", h("input", { id: "g-depth", name: "depth", value: depth, size: 3 })),
    h("button", { id: "g-show", type: "submit" }, "show"));
  let mode = "full";
  const render = async () => {
    const qs = new URLSearchParams({ depth });
    if (task) qs.set("task", task);
    const d = await api("/api/runs/" + enc(runId) + "/graph?" + qs);
    mode = d.mode;
    const parts = [h("h1", {}, "Dependency graph"), form];
    if (d.mode === "full") {
      parts.push(h("p", { id: "graph-note", class: "muted" }, "showing " + d.nodes.length + " of " + d.total + " tasks, " + d.edges.length + " dependencies; click a task for its detail"));
      parts.push(drawTasks(runId, d));
    } else {
      parts.push(h("p", { id: "graph-note", class: "muted" }, "This run has " + d.total + " tasks: showing them by app (" + d.apps.nodes.length + " apps; edges count dependencies). Click an app for its tasks; give a task id for its neighbourhood."));
      parts.push(drawApps(runId, d.apps));
      if (d.task !== null && d.task !== undefined) {
        parts.push(h("h2", {}, "Neighbourhood of task " + d.task));
        parts.push(h("p", { id: "hood-note", class: "muted" }, "showing " + d.nodes.length + " of " + d.total + " tasks: ancestors and descendants up to depth " + d.depth + (d.truncated ? ", cut at " + d.nodes.length + " tasks" : "")));
        parts.push(drawTasks(runId, d));
      }
    }
    show(parts);
  };
  // A big run's graph reads every task of the run again once new tasks arrive: redraw it less often.
  const reloadSmall = debounce(render, 500), reloadBig = debounce(render, 3000);
  onStatus = (rows) => {
    let unseen = false;
    for (const r of rows) {
      const g = document.querySelector('#graph g[data-task-id="' + r.task_id + '"]');
      if (g) g.setAttribute("class", g.getAttribute("class").replace(/state-\S+/, "state-" + r.task_status_name));
      else unseen = true;
    }
    if (unseen) (mode === "full" ? reloadSmall : reloadBig)();  // new tasks, or tasks drawn only as app totals
  };
  await render();
}
