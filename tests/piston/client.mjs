// piston-client 1.0.2 (npm, unmodified) against CodeBeaker's Piston API.
// Run by tests/piston.rs as `node client.mjs SCENARIO` with CB_SERVER set; each scenario
// asserts, and prints what it saw. The packages come from the directory scripts/setup.sh
// installs them into (NODE_PATH does not reach ES modules, so they are imported by path).
import assert from "node:assert/strict";

const modules = process.env.CB_NODE_MODULES;
const { piston } = await import(`${modules}/piston-client/index.js`);
const client = piston({ server: process.env.CB_SERVER });

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

  async unknown() {
    const result = await client.execute({ language: "cobol", version: "*", files: [{ content: "x" }] });
    console.log(result);
    assert.equal(result.message, "cobol-* runtime is unknown");
  },
};

await scenarios[process.argv[2]]();
