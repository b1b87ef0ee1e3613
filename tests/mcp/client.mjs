// The official TypeScript MCP SDK (@modelcontextprotocol/sdk 1.32.2, unmodified), which speaks
// the initialize handshake (up to 2025-11-25), against CodeBeaker's MCP server.
// Run by tests/mcp.rs as `node client.mjs` with CB_NODE_MODULES and either CB_MCP (the /mcp
// URL) or CB_BIN and CB_ARGS (stdio: `$CB_BIN mcp $CB_ARGS`). It asserts, and prints what it
// saw. The SDK checks each result's structuredContent against the tool's outputSchema itself.
import assert from "node:assert/strict";

const sdk = `${process.env.CB_NODE_MODULES}/@modelcontextprotocol/sdk/dist/esm`;
const { Client } = await import(`${sdk}/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/client/stdio.js`);
const { StreamableHTTPClientTransport } = await import(`${sdk}/client/streamableHttp.js`);

const transport = process.env.CB_MCP
  ? new StreamableHTTPClientTransport(new URL(process.env.CB_MCP))
  : new StdioClientTransport({
      command: process.env.CB_BIN,
      args: ["mcp", ...process.env.CB_ARGS.split(" ")],
      stderr: "inherit",
    });
const client = new Client({ name: "codebeaker-tests", version: "1.0.0" });
await client.connect(transport);

const text = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text).join("");

async function call(name, args) {
  const result = await client.callTool({ name, arguments: args });
  console.log(`${name} ${JSON.stringify(args).slice(0, 100)} -> isError=${result.isError}\n${text(result)}`);
  return result;
}

// The handshake: the newest version this SDK knows, the server's name and the tools capability.
assert.equal(client.getServerVersion().name, "codebeaker");
assert.ok(client.getServerCapabilities().tools);

const { tools } = await client.listTools();
assert.deepEqual(tools.map((t) => t.name).sort(), ["execute", "languages", "run_tests"]);
const execute = tools.find((t) => t.name === "execute");
assert.deepEqual([...execute.inputSchema.required].sort(), ["code", "language"]);
assert.ok(execute.outputSchema.properties.exit_code);

// Output and stdin; a non-zero exit is a normal result.
let result = await call("execute", { language: "javascript", code: 'const s = require("fs").readFileSync(0, "utf8"); console.log(s.trim().toUpperCase()); process.exit(4);', stdin: "beaker\n" });
assert.ok(!result.isError, "a non-zero exit is a normal result");
assert.equal(result.structuredContent.status, "completed");
assert.equal(result.structuredContent.exit_code, 4);
assert.equal(result.structuredContent.stdout, "BEAKER\n");
assert.match(text(result), /exit code 4/);

// A compiled language with files beside the main one, and args.
result = await call("execute", {
  language: "cpp",
  code: '#include <iostream>\n#include "twice.h"\nint main(int argc, char **argv) { std::cout << twice(argc - 1) << std::endl; }',
  files: [{ name: "twice.h", content: "inline int twice(int n) { return 2 * n; }\n" }],
  args: ["a", "b", "c"],
});
assert.equal(result.structuredContent.stdout, "6\n");

// The time limit.
result = await call("execute", { language: "python", code: "while True: pass", timeout: 1 });
assert.equal(result.structuredContent.status, "time_limit_exceeded");

// Bad input is an error result naming the bad value and the known languages.
result = await call("execute", { language: "cobol-85", code: "x" });
assert.equal(result.isError, true);
assert.match(text(result), /cobol-85/);
assert.match(text(result), /python/);

result = await call("languages", {});
assert.ok(result.structuredContent.languages.some((l) => l.name === "python"));

await client.close();
console.log("--- passed");
