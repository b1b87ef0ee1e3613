// The live view at `/console`: the cluster's nodes, the backlog, jobs per second and latency,
// recent executions with live CPU and memory for running ones, and cancel. It polls the public
// REST API every two seconds (GET /workers, /queue, /executions) and follows each running
// execution's events for its usage.
import { uPlot } from "/console/assets/vendor.js";
import {
  askForKey, callWithKey, follow, formatBytes, formatMs, statusWords,
} from "/console/assets/api.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
const STEP_S = 10;
const WINDOW_S = 300;

/** Finished executions seen, by id: what the charts are drawn from. */
const finished = new Map();
/** Live usage of running executions, by id, and the followers that keep it. */
const usage = new Map();
const followers = new Map();

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function ago(iso) {
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return seconds < 60 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function showNodes(nodes) {
  const body = $("nodes").querySelector("tbody");
  body.replaceChildren(...nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.node = n.id;
    tr.append(cell(n.id), cell(n.role), cell(`${n.busy} of ${n.workers}`),
      cell(String(Math.max(0, n.workers - n.busy))), cell(n.ready ? "yes" : "no", n.ready ? "good" : "bad"),
      cell(n.version), cell(ago(n.last_heartbeat)));
    return tr;
  }));
}

function showBacklog(backlog) {
  for (const priority of ["high", "normal", "low"]) $(`backlog-${priority}`).textContent = backlog[priority];
}

async function cancel(id, button) {
  button.disabled = true;
  try {
    await callWithKey("DELETE", `/execution/${id}`);
  } catch (e) {
    button.disabled = false;
    $("updated").textContent = `Cancel failed: ${e.message}`;
  }
}

async function open(id) {
  const record = await callWithKey("GET", `/execution/${id}`);
  $("record-title").textContent = `Execution ${id}`;
  $("record").textContent = JSON.stringify(record, null, 2);
  $("record-dialog").showModal();
}

/**
 * Follows a running execution's events for its CPU and memory, once per execution. Each stream
 * holds a connection, and a browser opens few to one server: at most FOLLOWED at once, so
 * that the page's own requests always get through.
 */
const FOLLOWED = 3;

function watch(id) {
  if (followers.has(id) || followers.size >= FOLLOWED) return;
  const stop = new AbortController();
  followers.set(id, stop);
  follow(id, (name, data) => {
    if (name === "usage") usage.set(id, data);
  }, stop.signal).catch(() => {}).finally(() => followers.delete(id));
}

function showRecent(rows) {
  const body = $("recent").querySelector("tbody");
  body.replaceChildren(...rows.slice(0, 30).map((r) => {
    const live = r.status === "queued" || r.status === "running";
    if (r.status === "running") watch(r.execution_id);
    const tr = document.createElement("tr");
    tr.dataset.execution = r.execution_id;
    tr.dataset.status = r.status;
    const id = document.createElement("td");
    const link = document.createElement("button");
    link.type = "button";
    link.className = "link";
    link.textContent = r.execution_id.slice(0, 8);
    link.setAttribute("aria-label", `Open execution ${r.execution_id}`);
    link.onclick = () => open(r.execution_id);
    id.append(link);
    const seen = usage.get(r.execution_id);
    const used = live && seen
      ? `${formatMs(seen.cpu_time_ms)} / ${formatBytes(seen.memory_bytes)}`
      : `${formatMs(r.cpu_time_ms)} / ${formatBytes(r.memory_peak_bytes)}`;
    const actions = document.createElement("td");
    if (live) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Cancel";
      button.setAttribute("aria-label", `Cancel execution ${r.execution_id}`);
      button.onclick = () => cancel(r.execution_id, button);
      actions.append(button);
    }
    tr.append(id, cell(statusWords(r.status), live ? "" : r.status === "completed" ? "good" : "bad"),
      cell(r.language), cell(r.node || "–"), cell(new Date(r.created_at).toLocaleTimeString()),
      cell(formatMs(r.duration_ms)), cell(used), actions);
    return tr;
  }));
  for (const r of rows) {
    if (r.finished_at) finished.set(r.execution_id, r);
  }
}

// --- charts -----------------------------------------------------------------------------

function chart(target, label, color) {
  const width = Math.max(280, target.clientWidth || 420);
  return new uPlot({
    width, height: 180,
    series: [{}, { label, stroke: color, width: 2, fill: color + "22" }],
    axes: [{}, { size: 50 }],
    legend: { show: false },
  }, [[], []], target);
}

let rateChart;
let latencyChart;

function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Jobs per second and median time, in STEP_S steps over the last WINDOW_S. */
function drawCharts() {
  const now = Math.floor(Date.now() / 1000 / STEP_S) * STEP_S;
  const times = [];
  const buckets = [];
  for (let t = now - WINDOW_S + STEP_S; t <= now; t += STEP_S) {
    times.push(t);
    buckets.push([]);
  }
  for (const r of finished.values()) {
    const at = Date.parse(r.finished_at) / 1000;
    // Step i covers [times[i], times[i] + STEP_S).
    const i = Math.floor((at - times[0]) / STEP_S);
    if (i >= 0 && i < buckets.length) buckets[i].push(r.duration_ms ?? 0);
    if (at < now - WINDOW_S - STEP_S) finished.delete(r.execution_id);
  }
  rateChart.setData([times, buckets.map((b) => b.length / STEP_S)]);
  latencyChart.setData([times, buckets.map((b) => median(b))]);
  // The charts in words, for screen readers (and the tests).
  const all = buckets.flat();
  $("rate-chart").setAttribute("aria-label", `${all.length} jobs finished in the last five minutes`);
  const middle = median(all);
  $("latency-chart").setAttribute("aria-label",
    middle == null ? "No job finished in the last five minutes" : `Median time per job: ${middle} ms`);
}

// --- polling ----------------------------------------------------------------------------

async function poll() {
  try {
    const [nodes, backlog, recent] = await Promise.all([
      callWithKey("GET", "/workers"),
      callWithKey("GET", "/queue"),
      callWithKey("GET", "/executions?limit=100"),
    ]);
    showNodes(nodes);
    showBacklog(backlog);
    showRecent(recent);
    drawCharts();
    $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${POLL_MS / 1000} s.`;
    document.body.dataset.ready = "true";
  } catch (e) {
    $("updated").textContent = `Cannot refresh: ${e.message}`;
  }
  setTimeout(poll, POLL_MS);
}

$("key-button").onclick = () => askForKey("Requests from this page will send this key.");
rateChart = chart($("rate-chart"), "jobs/s", "#1f6feb");
latencyChart = chart($("latency-chart"), "ms", "#b35900");
poll();
