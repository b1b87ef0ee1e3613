// piston-client 1.0.2 (npm, unmodified) against CodeBeaker's Piston API.
// Run by tests/piston.rs as `node client.mjs SCENARIO` with CB_SERVER set; each scenario
// asserts, and prints what it saw. The packages come from the directory scripts/setup.sh
// installs them into (NODE_PATH does not reach ES modules, so they are imported by path).
import assert from "node:assert/strict";

const modules = process.env.CB_NODE_MODULES;
const { piston } = await import(`${modules}/piston-client/index.js`);
const { default: WebSocket } = await import(`${modules}/ws/index.js`);
const client = piston({ server: process.env.CB_SERVER });

// One /api/v2/connect session: `open(ws)` on connect, `react(ws, message)` for each message
// that comes; resolves with every message and the close code and reason.
function session(open, react = () => {}) {
  const url = process.env.CB_SERVER.replace(/^http/, "ws") + "/api/v2/connect";
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages = [];
    ws.on("open", () => open(ws));
    ws.on("message", (raw) => {
      const message = JSON.parse(raw.toString());
      messages.push(message);
      react(ws, message);
    });
    ws.on("close", (code, reason) => resolve({ messages, code, reason: reason.toString() }));
    ws.on("error", reject);
  });
}

const send = (ws, message) => ws.send(JSON.stringify(message));
const init = (language, content) => ({ type: "init", language, version: "*", files: [{ content }] });

const scenarios = {
  async runtimes() {
    const runtimes = await client.runtimes();
    const python = runtimes.find((r) => r.language === "python");
    console.log(python);
    assert.match(python.version, /^\d+\.\d+\.\d+$/);
    assert.ok(python.aliases.includes("py"));
  },

  // C, JavaScript and Python by name, with stdin and the client's default args ["1","2","3"].
  async languages() {
    const programs = {
      c: '#include <stdio.h>\nint main(int c, char **v){char s[32]; scanf("%31s", s); printf("%s %s %d\\n", s, v[1], c - 1);}',
      javascript: 'const s = require("fs").readFileSync(0, "utf8").trim(); console.log(s, process.argv[2], process.argv.length - 2);',
      python: "import sys\nprint(input(), sys.argv[1], len(sys.argv) - 1)",
    };
    for (const [language, code] of Object.entries(programs)) {
      const result = await client.execute(language, code, { stdin: "beaker" });
      console.log(language, JSON.stringify(result.run));
      assert.equal(result.language, language);
      assert.equal(result.run.stdout, "beaker 1 3\n");
      assert.equal(result.run.code, 0);
      assert.equal(result.run.status, null);
      assert.equal("compile" in result, language === "c", "compile only for compiled languages");
    }
  },

  // An alias with "*", given args, several files (one base64), a compile error, a timeout,
  // an output limit.
  async details() {
    const alias = await client.execute({
      language: "py", version: "*", args: ["x", "y"],
      files: [
        { content: "import helper, sys\nprint(helper.WORD, sys.argv[1:], open('data.bin', 'rb').read())" },
        { name: "helper.py", content: "WORD = 'from a second file'" },
        { name: "data.bin", content: Buffer.from([0, 255]).toString("base64"), encoding: "base64" },
      ],
    });
    console.log("alias", JSON.stringify(alias.run));
    assert.equal(alias.language, "python");
    assert.equal(alias.run.stdout, "from a second file ['x', 'y'] b'\\x00\\xff'\n");

    const broken = await client.execute("c", "int main() { return x; }");
    console.log("compile error", JSON.stringify(broken.compile));
    assert.equal(broken.compile.code, 1);
    assert.equal(broken.compile.status, "RE");
    assert.match(broken.compile.stderr, /error/);
    assert.deepEqual(broken.run, broken.compile, "a failed compile is also the run, as Piston answers");

    const slow = await client.execute("python", "while True: pass", { runTimeout: 1000 });
    console.log("timeout", JSON.stringify(slow.run));
    assert.equal(slow.run.status, "TO");
    assert.equal(slow.run.signal, "SIGKILL");

    const loud = await client.execute("python", "print('x' * 10_000_000)");
    console.log("output limit", loud.run.status, loud.run.stdout.length);
    assert.equal(loud.run.status, "OL");

    const failing = await client.execute("python", "import sys; sys.exit(3)");
    assert.equal(failing.run.code, 3);
    assert.equal(failing.run.status, "RE");
  },

  // Interactive stdin, output that streams before the end, and a signal that reaches the
  // program (Piston's own server ignores it).
  async session() {
    const program = [
      "import signal, sys",
      "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), sys.exit(7)))",
      "print('ready', flush=True)",
      "for line in sys.stdin:",
      "    print('echo', line.strip(), flush=True)",
    ].join("\n");
    let exitSeen = false;
    // What the program printed so far: a line may come in several chunks (under load, "echo"
    // and " hello\n" came apart), so each step waits for its text in the whole output.
    let printed = "";
    let step = 0;
    const { messages, code, reason } = await session(
      (ws) => send(ws, init("python", program)),
      (ws, m) => {
        if (m.type === "exit") exitSeen = true;
        if (m.type !== "data") return;
        printed += m.data;
        if (step === 0 && printed.includes("ready\n")) {
          assert.equal(exitSeen, false, "output streams before the program ends");
          send(ws, { type: "data", stream: "stdin", data: "hello\n" });
          step = 1;
        }
        if (step === 1 && printed.includes("echo hello\n")) {
          send(ws, { type: "signal", signal: "SIGTERM" });
          step = 2;
        }
      },
    );
    console.log(JSON.stringify(messages), code, reason);
    assert.deepEqual(messages[0], { type: "runtime", language: "python", version: messages[0].version });
    assert.deepEqual(messages[1], { type: "stage", stage: "run" });
    const out = messages.filter((m) => m.type === "data").map((m) => m.data).join("");
    assert.equal(out, "ready\necho hello\ngot TERM\n");
    assert.deepEqual(messages.at(-1), { type: "exit", stage: "run", code: 7, signal: null });
    assert.equal(code, 4999);
    assert.equal(reason, "Job Completed");
  },

  // A compiled program: the compile stage, its exit, then the run; and a failed compile.
  // Its stdin is sent while it compiles: it waits in the program's pipe.
  async session_compiled() {
    const sum = '#include <stdio.h>\nint main(){int a,b; scanf("%d %d",&a,&b); printf("%d\\n",a+b); return 0;}';
    const ok = await session(
      (ws) => send(ws, init("c", sum)),
      (ws, m) => { if (m.type === "stage" && m.stage === "compile") send(ws, { type: "data", stream: "stdin", data: "2 40\n" }); },
    );
    console.log(JSON.stringify(ok.messages));
    const kinds = ok.messages.map((m) => m.type === "stage" ? `stage ${m.stage}` : m.type === "exit" ? `exit ${m.stage} ${m.code}` : m.type);
    assert.deepEqual(kinds.filter((k) => k !== "data"), ["runtime", "stage compile", "exit compile 0", "stage run", "exit run 0"]);
    assert.equal(ok.messages.filter((m) => m.type === "data").map((m) => m.data).join(""), "42\n");
    assert.equal(ok.code, 4999);

    const broken = await session((ws) => send(ws, init("c", "int main(){ return x; }")));
    const exit = broken.messages.at(-1);
    console.log(JSON.stringify(broken.messages));
    assert.equal(exit.stage, "compile");
    assert.equal(exit.code, 1);
    assert.match(broken.messages.filter((m) => m.type === "data").map((m) => m.data).join(""), /error/);
    assert.equal(broken.code, 4999);
  },

  // Piston's close codes, each for its reason.
  async session_refusals() {
    const quiet = await session(() => {});
    assert.deepEqual([quiet.code, quiet.reason], [4001, "Initialization Timeout"]);
    const early = await session((ws) => send(ws, { type: "data", stream: "stdin", data: "x" }));
    assert.deepEqual([early.code, early.reason], [4003, "Not yet initialized"]);
    const sleeper = init("python", "import time\ntime.sleep(20)");
    const twice = await session((ws) => { send(ws, sleeper); send(ws, sleeper); });
    assert.deepEqual([twice.code, twice.reason], [4000, "Already Initialized"]);
    const wrongStream = await session((ws) => { send(ws, sleeper); send(ws, { type: "data", stream: "stdout", data: "x" }); });
    assert.deepEqual([wrongStream.code, wrongStream.reason], [4004, "Can only write to stdin"]);
    const badSignal = await session((ws) => { send(ws, sleeper); send(ws, { type: "signal", signal: "SIGNOPE" }); });
    assert.deepEqual([badSignal.code, badSignal.reason], [4005, "Invalid signal"]);
    // A frame larger than one NATS message reaches the program whole; stdin past what one
    // request may carry (2 MiB here), in frames each within it, is refused.
    const chunk = "x".repeat(1536 * 1024);
    const counter = init("python", "import sys\nprint(len(sys.stdin.buffer.read(1572864)), flush=True)");
    const big = await session((ws) => { send(ws, counter); send(ws, { type: "data", stream: "stdin", data: chunk }); });
    assert.equal(big.messages.filter((m) => m.type === "data").map((m) => m.data).join(""), "1572864\n");
    assert.equal(big.code, 4999);
    const flood = await session((ws) => {
      send(ws, sleeper);
      send(ws, { type: "data", stream: "stdin", data: chunk });
      send(ws, { type: "data", stream: "stdin", data: chunk });
    });
    assert.deepEqual(flood.messages.at(-1), { type: "error", message: "a session's stdin is at most 2097152 bytes" });
    assert.deepEqual([flood.code, flood.reason], [4002, "Notified Error"]);
    const unknown = await session((ws) => send(ws, init("brainfuck", "x")));
    assert.deepEqual(unknown.messages, [{ type: "error", message: "brainfuck-* runtime is unknown" }]);
    assert.deepEqual([unknown.code, unknown.reason], [4002, "Notified Error"]);
  },

  async unknown() {
    const result = await client.execute({ language: "brainfuck", version: "*", files: [{ content: "x" }] });
    console.log(result);
    assert.equal(result.message, "brainfuck-* runtime is unknown");
  },
};

await scenarios[process.argv[2]]();
