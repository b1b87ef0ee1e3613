// The playground at `/`: pick a language, edit, run, watch the output come, check test cases,
// share a link. Everything goes through the public REST API (api.js).
import {
  EditorView, basicSetup, keymap, Compartment, StreamLanguage, cpp, go, java, javascript, php,
  python, rust, csharp, kotlin, scala, lua, ruby, shell, clojure, cobol, commonLisp, crystal, d,
  erlang, fortran, groovy, haskell, oCaml, octave, pascal, perl, r, scheme, sqlite, tcl,
} from "/console/assets/vendor.js";
import {
  apiKey, askForKey, call, callWithKey, follow, formatBytes, formatMs, interactiveSocket,
  statusWords,
} from "/console/assets/api.js";

const $ = (id) => document.getElementById(id);

/** CodeMirror's mode for each of CodeBeaker's languages; others are plain text. */
const MODES = {
  python: () => python(),
  javascript: () => javascript(),
  typescript: () => javascript({ typescript: true }),
  c: () => cpp(),
  cpp: () => cpp(),
  java: () => java(),
  rust: () => rust(),
  go: () => go(),
  php: () => php(),
  csharp: () => StreamLanguage.define(csharp),
  lua: () => StreamLanguage.define(lua),
  ruby: () => StreamLanguage.define(ruby),
  bash: () => StreamLanguage.define(shell),
  // CodeMirror 5's modes, by language name (nasm, ada, prolog, elixir, nim and zig have none).
  ...Object.fromEntries(
    Object.entries({
      kotlin, scala, clojure, cobol, commonlisp: commonLisp, crystal, d, erlang, fortran, groovy,
      haskell, ocaml: oCaml, octave, pascal, perl, r, scheme, racket: scheme, sqlite, tcl,
    }).map(([name, legacy]) => [name, () => StreamLanguage.define(legacy)]),
  ),
};

let languages = [];
const mode = new Compartment();
const editor = new EditorView({
  parent: $("editor"),
  extensions: [
    keymap.of([{ key: "Mod-Enter", run: () => (run(), true) }]),
    basicSetup,
    mode.of([]),
    EditorView.contentAttributes.of({ "aria-label": "Source code" }),
  ],
});

// Ctrl/Cmd+Enter runs from anywhere on the page, not only in the editor.
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !editor.hasFocus) {
    event.preventDefault();
    run();
  }
});

function setCode(text) {
  editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: text } });
}

function chooseLanguage(name, keepCode) {
  const language = languages.find((l) => l.name === name) || languages[0];
  $("language").value = language.name;
  $("version").textContent = `version ${language.version}`;
  $("timeout").placeholder = `default ${language.limits.timeout.default}`;
  editor.dispatch({ effects: mode.reconfigure(MODES[language.name] ? MODES[language.name]() : []) });
  if (!keepCode) setCode(language.example);
}

/** The request the form describes. */
function request() {
  const body = { language: $("language").value, code: editor.state.doc.toString() };
  const args = $("args").value.trim();
  if (args) body.args = args.split(/\s+/);
  if ($("timeout").value) body.timeout = Number($("timeout").value);
  if ($("memory").value.trim()) body.memory_limit = $("memory").value.trim();
  return body;
}

// --- the result -------------------------------------------------------------------------

function clearResult(words) {
  $("status").textContent = words;
  $("status").className = "status";
  for (const id of ["stdout", "stderr", "compile-output"]) $(id).textContent = "";
  $("stderr-box").hidden = true;
  $("compile-box").hidden = true;
  $("facts").hidden = true;
}

function append(stream, text) {
  $(stream).textContent += text;
  if (stream === "stderr") $("stderr-box").hidden = false;
}

function showRecord(record) {
  const ok = record.status === "completed" && record.exit_code === 0;
  const words = statusWords(record.status);
  const detail = record.status === "completed" && record.exit_code !== 0
    ? ` with exit code ${record.exit_code}` : "";
  $("status").textContent = `${words}${detail}.${record.error ? " " + record.error : ""}`;
  $("status").className = `status ${ok ? "good" : "bad"}`;
  $("facts").hidden = false;
  $("exit-code").textContent = record.exit_code ?? (record.signal || "–");
  $("duration").textContent = formatMs(record.duration_ms);
  $("cpu").textContent = formatMs(record.cpu_time_ms);
  $("memory-peak").textContent = formatBytes(record.memory_peak_bytes);
  $("stdout").textContent = record.stdout;
  $("stderr").textContent = record.stderr;
  $("stderr-box").hidden = !record.stderr;
  const compile = record.compile;
  const compileText = compile ? compile.stdout + compile.stderr : "";
  $("compile-box").hidden = !compileText;
  $("compile-output").textContent = compileText;
}

function showRefusal(error) {
  $("status").textContent = `Not run: ${error.message}`;
  $("status").className = "status bad";
}

// --- running ----------------------------------------------------------------------------

let running = null;

async function run() {
  if (running) return;
  running = true;
  $("run").disabled = true;
  clearResult("Submitting…");
  try {
    if ($("interactive").checked) await runInteractive();
    else await runStreamed();
  } catch (e) {
    showRefusal(e);
  } finally {
    running = null;
    $("run").disabled = false;
    $("send-form").hidden = true;
  }
}

/** `POST /execute/async`, then the execution's events as they come. */
async function runStreamed() {
  const body = { ...request(), stdin: $("stdin").value };
  const accepted = await callWithKey("POST", "/execute/async", body);
  $("status").textContent = statusWords("queued") + "…";
  let final = null;
  await follow(accepted.execution_id, (name, data) => {
    if (name === "status") $("status").textContent = statusWords(data.status) + "…";
    else if (name === "stdout" || name === "stderr") append(name, data.data || "");
    else if (name === "final") final = data;
  });
  showRecord(final || (await call("GET", `/execution/${accepted.execution_id}`)));
}

/** `GET /execute/ws`: output as it comes, and what is typed goes to the program's stdin. */
function runInteractive() {
  if (apiKey()) {
    throw new Error("interactive runs use a WebSocket, which a browser cannot send an API key on; use a server without keys, or untick Interactive");
  }
  return new Promise((resolve, reject) => {
    const ws = interactiveSocket();
    const send = (frame) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame));
    ws.onopen = () => {
      ws.send(JSON.stringify({ ...request(), stdin: $("stdin").value }));
      $("send-form").hidden = false;
      $("send-line").focus();
    };
    $("send-form").onsubmit = (event) => {
      event.preventDefault();
      send({ type: "stdin", data: $("send-line").value + "\n" });
      $("send-line").value = "";
    };
    $("send-eof").onclick = () => send({ type: "eof" });
    ws.onmessage = (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "status") $("status").textContent = statusWords(frame.status) + "…";
      else if (frame.type === "stdout" || frame.type === "stderr") append(frame.type, frame.data || "");
      else if (frame.type === "final") showRecord(frame.record);
      else if (frame.type === "error") reject(new Error(frame.error.message));
    };
    ws.onerror = () => reject(new Error("the WebSocket to /execute/ws failed"));
    ws.onclose = () => resolve();
  });
}

// --- test cases -------------------------------------------------------------------------

function addCase(stdin = "", expected = "") {
  const n = $("cases").children.length + 1;
  const row = document.createElement("fieldset");
  row.className = "case";
  row.innerHTML = `<legend>Case ${n}</legend>
    <label>Input <textarea class="case-stdin" rows="2" spellcheck="false"></textarea></label>
    <label>Expected output <textarea class="case-expected" rows="2" spellcheck="false"></textarea></label>
    <button type="button" class="quiet remove" aria-label="Remove case ${n}">Remove</button>`;
  row.querySelector(".case-stdin").value = stdin;
  row.querySelector(".case-expected").value = expected;
  row.querySelector(".remove").onclick = () => row.remove();
  $("cases").append(row);
}

async function runTests() {
  const tests = [...document.querySelectorAll("#cases .case")].map((row) => ({
    stdin: row.querySelector(".case-stdin").value,
    expected_output: row.querySelector(".case-expected").value,
  }));
  if (!tests.length) {
    $("verdict").textContent = "Add a case first.";
    return;
  }
  $("verdict").textContent = "Running the tests…";
  $("verdicts").hidden = true;
  try {
    const record = await callWithKey("POST", "/execute", { ...request(), tests });
    const cases = record.tests || [];
    const accepted = cases.filter((c) => c.verdict === "accepted").length;
    const verdict = (record.verdict || record.status).replaceAll("_", " ");
    $("verdict").textContent = `Verdict: ${verdict} (${accepted} of ${tests.length} accepted).`;
    $("verdict").className = `status ${record.verdict === "accepted" ? "good" : "bad"}`;
    const body = $("verdicts").querySelector("tbody");
    body.innerHTML = "";
    cases.forEach((c, i) => {
      const tr = document.createElement("tr");
      tr.className = c.verdict === "accepted" ? "good" : "bad";
      for (const text of [`${i + 1}`, c.verdict.replaceAll("_", " "), formatMs(c.duration_ms), c.stdout]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    });
    $("verdicts").hidden = false;
    if (record.status === "compile_error") showRecord(record);
  } catch (e) {
    $("verdict").textContent = `Not run: ${e.message}`;
    $("verdict").className = "status bad";
  }
}

// --- sharing ----------------------------------------------------------------------------

function encode(state) {
  const bytes = new TextEncoder().encode(JSON.stringify(state));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decode(text) {
  const base64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function share() {
  const state = { language: $("language").value, code: editor.state.doc.toString(), stdin: $("stdin").value };
  const link = `${location.origin}/#p=${encode(state)}`;
  history.replaceState(null, "", link);
  $("share-link").hidden = false;
  $("share-link").value = link;
  $("share-link").select();
  navigator.clipboard?.writeText(link).catch(() => {});
}

function shared() {
  const match = location.hash.match(/^#p=([A-Za-z0-9_-]+)$/);
  if (!match) return null;
  try {
    return decode(match[1]);
  } catch {
    return null;
  }
}

// --- start ------------------------------------------------------------------------------

async function start() {
  $("run").onclick = run;
  $("share").onclick = share;
  $("add-case").onclick = () => addCase();
  $("run-tests").onclick = runTests;
  $("key-button").onclick = () => askForKey("Requests from this page will send this key.");
  $("language").onchange = () => chooseLanguage($("language").value, false);
  try {
    languages = await callWithKey("GET", "/languages");
  } catch (e) {
    showRefusal(e);
    return;
  }
  for (const l of languages) $("language").append(new Option(`${l.name} (${l.version})`, l.name));
  const state = shared();
  if (state) {
    chooseLanguage(state.language, true);
    setCode(state.code || "");
    $("stdin").value = state.stdin || "";
  } else {
    chooseLanguage(languages.some((l) => l.name === "python") ? "python" : languages[0].name, false);
  }
  document.body.dataset.ready = "true";
}

start();
