// flowlib dashboard: a small single-page viewer of the monitoring store.
// Written for this package; no libraries. Routes (location.hash):
//   #/                      runs
//   #/run/ID                one run's summary
//   #/run/ID/tasks?...      task table (filters in the query string, keyset pages)
//   #/run/ID/task/N         one task: tries, failure, traceback, states, std streams
//   #/run/ID/workers        worker pools, blocks, the task stream of tries
//   #/run/ID/graph?task=N   the dependency graph (static/graph.js)
//   #/run/ID/resources      CPU and memory plots (resources.js)
"use strict";

const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
let feed = null;         // the open EventSource
let feedRun = null;
let onStatus = null;     // what the current page does with live state changes

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmtTime(t) {
  if (t === null || t === undefined) return "";
  const d = new Date(t * 1000);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function fmtDur(a, b) {
  if (a === null || b === null || a === undefined || b === undefined) return "";
  const s = b - a;
  return s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s";
}
function stateEl(name) { return h("span", { class: "state state-" + name }, name || ""); }
const enc = encodeURIComponent;
const FINAL = new Set(["exec_done", "memo_done", "failed", "dep_fail", "cancelled"]);

async function api(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function setCrumbs(items) {
  crumbs.replaceChildren(...items.map(([label, href]) => h("a", { href }, label)));
}

function show(...children) { view.replaceChildren(...children.flat(3).filter((c) => c !== null && c !== undefined)); }

// ------------------------------------------------------------------ live feed (server-sent events)

function follow(runId) {
  if (feedRun === runId && feed) return;
  if (feed) feed.close();
  feedRun = runId;
  feed = new EventSource("/api/runs/" + enc(runId) + "/events");
  feed.addEventListener("hello", () => { live.textContent = "live"; live.className = "live on"; });
  feed.addEventListener("status", (ev) => {
    const rows = JSON.parse(ev.data);
    if (onStatus) onStatus(rows);
  });
  feed.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}
function unfollow() {
  if (feed) feed.close();
  feed = null; feedRun = null;
  live.textContent = "offline"; live.className = "live off";
}

function debounce(fn, ms) {
  let timer = null;
  return () => { if (timer === null) timer = setTimeout(() => { timer = null; fn(); }, ms); };
}

// ------------------------------------------------------------------ pages

async function pageRuns() {
  unfollow();
  setCrumbs([]);
  const { runs } = await api("/api/runs");
  show(
    h("h1", {}, "Runs"),
    runs.length === 0 ? h("p", { class: "muted" }, "No runs in this database yet.") :
    h("table", { id: "runs" },
      h("tr", {}, ["workflow", "run", "began", "completed", "done", "failed", "host", "user"].map((c) => h("th", {}, c))),
      runs.map((r) => h("tr", {},
        h("td", {}, r.workflow_name || ""),
        h("td", {}, h("a", { href: "#/run/" + enc(r.run_id) }, r.run_id)),
        h("td", {}, fmtTime(r.time_began)),
        h("td", {}, r.time_completed ? fmtTime(r.time_completed) : h("span", { class: "state state-launched" }, "running")),
        h("td", {}, r.tasks_completed_count), h("td", {}, r.tasks_failed_count),
        h("td", {}, r.host || ""), h("td", {}, r.user || ""))))
  );
}

function throughputChart(points) {
  const W = 640, H = 160, P = 30;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("id", "throughput");
  if (!points.length) return svg;
  const t0 = points[0][0], t1 = points[points.length - 1][0] || t0 + 1;
  const ymax = Math.max(...points.map((p) => p[1]), 1e-9);
  const xy = points.map((p) => [P + (W - 2 * P) * (p[0] - t0) / Math.max(t1 - t0, 1e-9), H - P - (H - 2 * P) * p[1] / ymax]);
  const path = document.createElementNS(svg.namespaceURI, "polyline");
  path.setAttribute("points", xy.map((p) => p.join(",")).join(" "));
  path.setAttribute("fill", "none"); path.setAttribute("stroke", "#2f6fdb"); path.setAttribute("stroke-width", "2");
  svg.append(path);
  const label = document.createElementNS(svg.namespaceURI, "text");
  label.setAttribute("x", P); label.setAttribute("y", 16); label.setAttribute("font-size", "11");
  label.textContent = "peak " + ymax.toFixed(1) + " tasks/s";
  svg.append(label);
  return svg;
}

async function pageRun(runId) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"], ["graph", "#/run/" + enc(runId) + "/graph"], ["workers", "#/run/" + enc(runId) + "/workers"], ["resources", "#/run/" + enc(runId) + "/resources"]]);
  const render = async () => {
    const { run, summary } = await api("/api/runs/" + enc(runId));
    const states = Object.entries(summary.by_state).sort();
    const total = states.reduce((a, [, n]) => a + n, 0);
    show(
      h("h1", {}, (run.workflow_name || "run") + " ", h("span", { class: "muted" }, run.run_id)),
      h("p", { class: "muted" }, "began " + fmtTime(run.time_began) + (run.time_completed ? ", completed " + fmtTime(run.time_completed) : ", still running") + " on " + (run.host || "?") + " in " + (run.rundir || "?")),
      h("div", { class: "cards", id: "counts" },
        h("div", { class: "card" }, h("div", { class: "n", id: "count-total" }, total), "tasks"),
        states.map(([s, n]) => h("a", { class: "card", href: "#/run/" + enc(runId) + "/tasks?state=" + enc(s), dataset: { state: s } },
          h("div", { class: "n" }, n), stateEl(s)))),
      h("h2", {}, "Throughput (finished tasks per second)"), throughputChart(summary.throughput),
      h("h2", {}, "By app"),
      h("table", { id: "by-app" },
        h("tr", {}, h("th", {}, "app"), h("th", {}, "states")),
        Object.entries(summary.by_app).sort().map(([app, st]) => h("tr", {},
          h("td", {}, h("a", { href: "#/run/" + enc(runId) + "/tasks?app=" + enc(app) }, app)),
          h("td", {}, Object.entries(st).sort().map(([s, n]) => h("span", {}, stateEl(s), " " + n + "  ")))))),
    );
  };
  onStatus = debounce(render, 300);
  await render();
}

function readFilters(query) {
  const p = new URLSearchParams(query);
  return { state: p.get("state") || "", app: p.get("app") || "", executor: p.get("executor") || "", q: p.get("q") || "",
           since: p.get("since") || "", until: p.get("until") || "" };
}

async function pageTasks(runId, query) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"], ["workers", "#/run/" + enc(runId) + "/workers"]]);
  const f = readFilters(query);
  const { facets } = await api("/api/runs/" + enc(runId));
  const cursors = [null];  // the "after" of each page seen so far
  let page = 0;
  const tableBody = h("tbody", {});
  const totalEl = h("span", { id: "total" });
  const prev = h("button", { id: "prev", type: "button", disabled: true, onclick: () => { page -= 1; load(); } }, "‹ previous");
  const next = h("button", { id: "next", type: "button", disabled: true, onclick: () => { page += 1; load(); } }, "next ›");
  const toEpoch = (v) => (v ? String(new Date(v).getTime() / 1000) : "");
  const select = (id, name, values) => h("label", {}, name,
    h("select", { id, name }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v, selected: v === f[name] }, v))));
  const form = h("form", { class: "filters", id: "filters", onsubmit: (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      const p = new URLSearchParams();
      for (const k of ["state", "app", "executor", "q"]) if (data.get(k)) p.set(k, data.get(k));
      for (const k of ["since", "until"]) if (data.get(k)) p.set(k, toEpoch(data.get(k)));
      location.hash = "#/run/" + enc(runId) + "/tasks" + (p.toString() ? "?" + p : "");
    } },
    select("f-state", "state", facets.states), select("f-app", "app", facets.apps), select("f-executor", "executor", facets.executors),
    h("label", {}, "text or id", h("input", { id: "f-q", name: "q", value: f.q, placeholder: "app name or task id" })),
    h("label", {}, "updated since", h("input", { id: "f-since", name: "since", type: "datetime-local", step: "1" })),
    h("label", {}, "until", h("input", { id: "f-until", name: "until", type: "datetime-local", step: "1" })),
    h("button", { id: "f-apply", type: "submit" }, "filter"));

  async function load() {
    const p = new URLSearchParams();
    for (const k of ["state", "app", "executor", "q", "since", "until"]) if (f[k]) p.set(k, f[k]);
    p.set("limit", "50");
    if (cursors[page] !== null) p.set("after", cursors[page]);
    const t0 = performance.now();
    const data = await api("/api/runs/" + enc(runId) + "/tasks?" + p);
    cursors[page + 1] = data.next;
    totalEl.textContent = data.total + " tasks · page " + (page + 1) + " · " + (performance.now() - t0).toFixed(0) + " ms";
    prev.disabled = page === 0; next.disabled = data.next === null;
    tableBody.replaceChildren(...data.tasks.map((t) => h("tr", { dataset: { taskId: t.task_id } },
      h("td", {}, h("a", { href: "#/run/" + enc(runId) + "/task/" + t.task_id }, t.task_id)),
      h("td", {}, t.task_func_name), h("td", { class: "state-cell" }, stateEl(t.task_status_name)),
      h("td", {}, t.task_executor || ""), h("td", {}, fmtTime(t.task_time_invoked)),
      h("td", { class: "returned" }, fmtTime(t.task_time_returned)), h("td", {}, t.task_fail_count))));
  }
  const reload = debounce(load, 500);
  onStatus = (rows) => {
    let unseen = false;
    for (const r of rows) {
      const tr = tableBody.querySelector('tr[data-task-id="' + r.task_id + '"]');
      if (tr) {
        tr.querySelector(".state-cell").replaceChildren(stateEl(r.task_status_name));
        if (FINAL.has(r.task_status_name)) tr.querySelector(".returned").textContent = fmtTime(r.timestamp);
      }
      else unseen = true;
    }
    if (unseen || f.state) reload();  // new tasks, or rows entering/leaving a state filter
  };
  show(h("h1", {}, "Tasks"), form, h("div", { class: "pager" }, prev, next, totalEl),
    h("table", { id: "tasks" }, h("thead", {}, h("tr", {}, ["id", "app", "state", "executor", "invoked", "returned", "fails"].map((c) => h("th", {}, c)))), tableBody));
  await load();
}

function streamBlock(title, s) {
  if (!s) return null;
  return h("div", {}, h("h2", {}, title + " ", h("span", { class: "muted" }, s.path + " (" + s.size + " bytes)")),
    h("pre", { class: "stream" }, s.head), s.tail ? h("pre", { class: "stream" }, "…\n" + s.tail) : null);
}

async function pageTask(runId, taskId) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"], ["task " + taskId, "#/run/" + enc(runId) + "/task/" + taskId]]);
  const render = async () => {
    const d = await api("/api/runs/" + enc(runId) + "/tasks/" + taskId);
    const t = d.task;
    show(
      h("p", {}, h("a", { id: "task-graph", href: "#/run/" + enc(runId) + "/graph?task=" + t.task_id }, "dependency graph around this task")),
      h("h1", {}, "Task " + t.task_id + " ", h("span", { class: "muted" }, t.task_func_name), " ", h("span", { id: "task-state" }, stateEl(t.task_status_name))),
      h("table", { id: "task-info" }, [["executor", t.task_executor], ["invoked", fmtTime(t.task_time_invoked)], ["returned", fmtTime(t.task_time_returned)],
        ["fail count", t.task_fail_count], ["depends on", t.task_depends ? t.task_depends.split(",").map((x) => h("a", { href: "#/run/" + enc(runId) + "/task/" + x }, x + " ")) : ""],
        ["memoize", String(t.task_memoize)], ["inputs", t.task_inputs], ["outputs", t.task_outputs], ["stdout", t.task_stdout], ["stderr", t.task_stderr]]
        .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v === null || v === undefined ? "" : v)))),
      h("h2", {}, "Tries"),
      h("table", { id: "tries" }, h("tr", {}, ["try", "executor", "host", "launched", "returned", "took", "failure"].map((c) => h("th", {}, c))),
        d.tries.map((r) => h("tr", {}, h("td", {}, r.try_id), h("td", {}, r.task_executor), h("td", {}, r.hostname || ""),
          h("td", {}, fmtTime(r.task_try_time_launched)), h("td", {}, fmtTime(r.task_try_time_returned)),
          h("td", {}, fmtDur(r.task_try_time_launched, r.task_try_time_returned)),
          h("td", {}, r.task_exception_type ? [h("b", {}, r.task_exception_type), ": " + (r.task_exception_message || ""),
            r.task_exit_code !== null ? " (exit code " + r.task_exit_code + ")" : "", r.task_failure_reason ? " [" + r.task_failure_reason + "]" : ""] : "")))),
      d.tries.filter((r) => r.task_traceback).map((r) => h("div", {}, h("h2", {}, "Traceback of try " + r.try_id),
        h("pre", { class: "traceback" }, r.task_traceback))),
      h("h2", {}, "States"),
      h("table", { id: "states" }, h("tr", {}, h("th", {}, "time"), h("th", {}, "from"), h("th", {}, "to"), h("th", {}, "try")),
        d.states.map((s) => h("tr", {}, h("td", {}, fmtTime(s.timestamp)), h("td", {}, stateEl(s.task_status_prev)), h("td", {}, stateEl(s.task_status_name)), h("td", {}, s.try_id)))),
      streamBlock("stdout", d.stdout), streamBlock("stderr", d.stderr));
    view.append(await resourcesForTask(runId, taskId));  // resources.js
  };
  onStatus = (rows) => { if (rows.some((r) => String(r.task_id) === String(taskId))) render(); };
  await render();
}

function ganttChart(tries) {
  const W = 900, row = 14, P = 4;
  const lanes = [...new Set(tries.map((t) => t.hostname || t.task_executor))].sort();
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", Math.max(lanes.length, 1) * (row + P) + 20); svg.setAttribute("id", "gantt");
  if (!tries.length) return svg;
  const now = Date.now() / 1000;
  const t0 = Math.min(...tries.map((t) => t.task_try_time_launched));
  const t1 = Math.max(...tries.map((t) => t.task_try_time_returned || now));
  const x = (v) => 120 + (W - 130) * (v - t0) / Math.max(t1 - t0, 1e-9);
  lanes.forEach((lane, i) => {
    const label = document.createElementNS(svg.namespaceURI, "text");
    label.setAttribute("x", 2); label.setAttribute("y", i * (row + P) + row); label.setAttribute("font-size", "11");
    label.textContent = lane; svg.append(label);
  });
  for (const t of tries) {
    const r = document.createElementNS(svg.namespaceURI, "rect");
    const lane = lanes.indexOf(t.hostname || t.task_executor);
    r.setAttribute("x", x(t.task_try_time_launched)); r.setAttribute("y", lane * (row + P));
    r.setAttribute("width", Math.max(1, x(t.task_try_time_returned || now) - x(t.task_try_time_launched))); r.setAttribute("height", row);
    r.setAttribute("fill", t.task_exception_type ? "#c62828" : "#2f6fdb"); r.setAttribute("opacity", "0.6");
    const title = document.createElementNS(svg.namespaceURI, "title");
    title.textContent = "task " + t.task_id + " try " + t.try_id; r.append(title);
    svg.append(r);
  }
  return svg;
}

async function pageWorkers(runId) {
  follow(runId);
  setCrumbs([["run " + runId, "#/run/" + enc(runId)], ["tasks", "#/run/" + enc(runId) + "/tasks"], ["workers", "#/run/" + enc(runId) + "/workers"]]);
  const render = async () => {
    const d = await api("/api/runs/" + enc(runId) + "/workers");
    show(h("h1", {}, "Workers, blocks and nodes"),
      h("h2", {}, "Worker pools (nodes)"),
      d.nodes.length ? h("table", { id: "nodes" }, h("tr", {}, ["pool", "host", "block", "workers", "active", "python", "seen"].map((c) => h("th", {}, c))),
        d.nodes.map((n) => h("tr", {}, h("td", {}, n.uid), h("td", {}, n.hostname), h("td", {}, n.block_id || ""), h("td", {}, n.worker_count),
          h("td", {}, String(n.active)), h("td", {}, n.python_version || ""), h("td", {}, fmtTime(n.timestamp))))) : h("p", { class: "muted" }, "No worker pools recorded."),
      h("h2", {}, "Blocks"),
      d.blocks.length ? h("table", { id: "blocks" }, h("tr", {}, ["executor", "block", "job", "status", "since"].map((c) => h("th", {}, c))),
        d.blocks.map((b) => h("tr", {}, h("td", {}, b.executor_label), h("td", {}, b.block_id), h("td", {}, b.job_id || ""), h("td", {}, b.status), h("td", {}, fmtTime(b.timestamp))))) : h("p", { class: "muted" }, "No blocks recorded."),
      h("h2", {}, "Task stream (latest " + d.tries.length + " tries)"), ganttChart(d.tries));
  };
  onStatus = debounce(render, 1000);
  await render();
}

async function route() {
  onStatus = null;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts.length === 0) await pageRuns();
    else if (parts[0] === "run" && parts.length === 2) await pageRun(parts[1]);
    else if (parts[0] === "run" && parts[2] === "tasks") await pageTasks(parts[1], query || "");
    else if (parts[0] === "run" && parts[2] === "task") await pageTask(parts[1], parts[3]);
    else if (parts[0] === "run" && parts[2] === "workers") await pageWorkers(parts[1]);
    else if (parts[0] === "run" && parts[2] === "graph") await pageGraph(parts[1], query || "");  // graph.js
    else if (parts[0] === "run" && parts[2] === "resources") await pageResources(parts[1]);  // resources.js
    else show(h("p", { class: "error" }, "No such page: " + hash));
  } catch (e) {
    show(h("p", { class: "error" }, String(e.message || e)));
  }
}

window.addEventListener("hashchange", route);
route();
