// The console's client of CodeBeaker's REST API, used like any other client: JSON calls, the
// API key (kept in this browser's localStorage only, sent as `Authorization: Bearer`), and
// server-sent events read through fetch, because EventSource cannot send a key.

const KEY = "codebeaker.api-key";

export function apiKey() {
  return localStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY, key);
  else localStorage.removeItem(KEY);
}

/** A refusal from the server, in its own words. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(json) {
  const h = json ? { "content-type": "application/json" } : {};
  if (apiKey()) h.authorization = `Bearer ${apiKey()}`;
  return h;
}

/** Calls the API; resolves with the JSON answer, or rejects with an ApiError. */
export async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the server cannot be reached (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error;
    throw new ApiError(response.status, error ? error.code : "http_" + response.status,
      error ? error.message : `the server answered ${response.status}`);
  }
  return data;
}

/**
 * The events of an execution (`GET /execution/{id}/events`), handed to `onEvent(name, data)`
 * as they come, until `final` or until `signal` aborts. Resolves when the stream ends.
 */
export async function follow(id, onEvent, signal) {
  const response = await fetch(`/execution/${id}/events`, { headers: headers(false), signal });
  if (!response.ok) throw new ApiError(response.status, "events", `events: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      if (name === "final") return;
    }
  }
}

/** A WebSocket to `GET /execute/ws` on this server. */
export function interactiveSocket() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return new WebSocket(`${scheme}//${location.host}/execute/ws`);
}

/** A status in plain words. */
export function statusWords(status) {
  return {
    queued: "Waiting for a worker",
    running: "Running",
    completed: "Completed",
    time_limit_exceeded: "Time limit exceeded",
    memory_limit_exceeded: "Memory limit exceeded",
    output_limit_exceeded: "Output limit exceeded",
    compile_error: "Compile error",
    cancelled: "Cancelled",
    internal_error: "Internal error",
  }[status] || status;
}

export function formatBytes(bytes) {
  if (bytes == null) return "–";
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

export function formatMs(ms) {
  if (ms == null) return "–";
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms} ms`;
}

/** The key dialog, made on first use (both pages share it). */
function keyDialog() {
  let dialog = document.getElementById("key-dialog");
  if (dialog) return dialog;
  dialog = document.createElement("dialog");
  dialog.id = "key-dialog";
  dialog.setAttribute("aria-labelledby", "key-title");
  dialog.innerHTML = `<form method="dialog">
      <h2 id="key-title">API key</h2>
      <p class="why"></p>
      <label for="key-input">Key (kept in this browser only)</label>
      <input id="key-input" type="password" autocomplete="off">
      <div class="row"><button type="submit" class="primary">Save</button></div>
    </form>`;
  document.body.append(dialog);
  return dialog;
}

/** Asks for an API key, when the server wants one; resolves once one is saved. */
export function askForKey(message) {
  const dialog = keyDialog();
  const input = dialog.querySelector("input");
  dialog.querySelector(".why").textContent = message || "This server asks for an API key.";
  input.value = apiKey();
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.querySelector("form").onsubmit = (event) => {
      event.preventDefault();
      setApiKey(input.value.trim());
      dialog.close();
      resolve();
    };
  });
}

/** `call`, asking for a key (and trying again) while the server answers 401. */
export async function callWithKey(method, path, body) {
  for (;;) {
    try {
      return await call(method, path, body);
    } catch (e) {
      if (e.status !== 401) throw e;
      await askForKey(apiKey() ? "That key was not accepted; enter another." : e.message);
    }
  }
}
