"""The official MCP Python SDK (mcp 2.3.0, unmodified) against CodeBeaker's MCP server.

Run by tests/mcp.rs as `python client.py SCENARIO...` with:
  CB_MCP   the server: an http(s) URL of /mcp, or `stdio`, which launches
           `$CB_BIN mcp $CB_ARGS` and speaks to it on its stdin and stdout;
  CB_MODE  `auto` (server/discover: the stateless 2026-07-28 revision) or `legacy` (the
           initialize handshake, 2025-11-25);
  CB_KEY   an API key to send as `Authorization: Bearer`, when set;
  CB_SERVER  the node's REST address, where `cancel` reads what became of its job.
Each scenario asserts, and prints what it saw.
"""

import asyncio
import json
import os
import shlex
import sys
import time

import httpx2
import jsonschema
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

MODE = os.environ.get("CB_MODE", "auto")
ERA = {"auto": "2026-07-28", "legacy": "2025-11-25"}[MODE]


def server():
    target = os.environ["CB_MCP"]
    if target == "stdio":
        args = ["mcp", *shlex.split(os.environ.get("CB_ARGS", ""))]
        return StdioServerParameters(command=os.environ["CB_BIN"], args=args)
    headers = {}
    if os.environ.get("CB_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['CB_KEY']}"
    return streamable_http_client(target, http_client=httpx2.AsyncClient(headers=headers, timeout=120))


async def call(client, tool, arguments):
    """A call whose result, when it is not an error, conforms to the tool's output schema."""
    result = await client.call_tool(tool, arguments)
    text = "".join(block.text for block in result.content if block.type == "text")
    print(f"{tool} {json.dumps(arguments)[:120]} -> error={result.is_error}\n{text}")
    if not result.is_error:
        schema = SCHEMAS[tool]
        jsonschema.validate(result.structured_content, schema)
    return result, text


SCHEMAS = {}


async def tools(client):
    """Names, schemas and descriptions; the server names itself and speaks the era asked for."""
    assert client.protocol_version == ERA, client.protocol_version
    assert client.server_info is not None and client.server_info.name == "codebeaker", client.server_info
    assert client.server_info.version, client.server_info
    assert client.server_capabilities.tools is not None
    listed = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listed) == {"execute", "run_tests", "languages"}, listed.keys()
    execute = listed["execute"]
    assert sorted(execute.input_schema["required"]) == ["code", "language"], execute.input_schema
    for field in ["language", "code", "stdin", "files", "args", "timeout"]:
        assert field in execute.input_schema["properties"], field
    for field in ["status", "exit_code", "stdout", "stderr", "duration_ms"]:
        assert field in execute.output_schema["properties"], field
    assert "tests" in listed["run_tests"].input_schema["required"]
    assert "languages" in listed["languages"].output_schema["properties"]
    for tool in listed.values():
        assert len(tool.description) > 80, f"{tool.name}: describe it for an agent"
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
    result, text = await call(client, "languages", {})
    names = [l["name"] for l in result.structured_content["languages"]]
    assert "python" in names and "c" in names, names
    python = next(l for l in result.structured_content["languages"] if l["name"] == "python")
    assert "py" in python["aliases"] and python["version"], python
    assert "python" in text and python["version"] in text, text


async def runs(client):
    """Output, stdin, files, args, exit codes, the time limit, compile errors and test cases."""
    result, text = await call(client, "execute", {"language": "py", "code": "print(input()[::-1])", "stdin": "beaker\n"})
    record = result.structured_content
    assert not result.is_error
    assert (record["status"], record["exit_code"], record["stdout"]) == ("completed", 0, "rekaeb\n"), record
    assert record["language"] == "python" and record["duration_ms"] is not None, record
    assert "rekaeb" in text and "Completed" in text, text

    code = "import sys, util\nprint(util.twice(sys.argv[1]), len(sys.argv) - 1)\nsys.exit(3)"
    files = [{"name": "util.py", "content": "def twice(s):\n    return s * 2\n"}]
    result, text = await call(client, "execute", {"language": "python", "code": code, "files": files, "args": ["ab", "cd"]})
    record = result.structured_content
    assert not result.is_error, "a non-zero exit is a normal result"
    assert (record["status"], record["exit_code"], record["stdout"]) == ("completed", 3, "abab 2\n"), record
    assert "exit code 3" in text, text

    result, text = await call(client, "execute", {"language": "python", "code": "while True: pass", "timeout": 1})
    assert not result.is_error
    assert result.structured_content["status"] == "time_limit_exceeded", result.structured_content
    assert "Time limit exceeded" in text, text

    result, text = await call(client, "execute", {"language": "c", "code": "int main( { return 0; }"})
    assert not result.is_error
    assert result.structured_content["status"] == "compile_error", result.structured_content
    assert "Compile error" in text and "error" in text.split("compiler output")[1], text

    square = "n = int(input())\nprint(n * n if n != 3 else 10)"
    tests = [{"stdin": "2\n", "expected_output": "4\n"}, {"stdin": "3\n", "expected_output": "9\n"}]
    result, text = await call(client, "run_tests", {"language": "python", "code": square, "tests": tests})
    record = result.structured_content
    assert record["verdict"] == "wrong_answer", record
    assert [c["verdict"] for c in record["tests"]] == ["accepted", "wrong_answer"], record["tests"]
    assert "1 of 2 cases accepted" in text and "case 2: wrong_answer" in text and "10" in text, text


async def concurrent(client):
    """Calls sent together are answered together: their programs' runs overlap."""
    code = "import time, sys\nstart = time.time()\ntime.sleep(1.5)\nprint(sys.argv[1], start, time.time())"
    calls = [call(client, "execute", {"language": "python", "code": code, "args": [str(i)]}) for i in range(4)]
    spans = []
    for i, (result, _) in enumerate(await asyncio.gather(*calls)):
        tag, start, end = result.structured_content["stdout"].split()
        assert tag == str(i), "each call gets its own program's answer"
        spans.append((float(start), float(end)))
    starts, ends = sorted(s for s, _ in spans), sorted(e for _, e in spans)
    assert starts[1] < ends[0], f"no two calls ran at once: {spans}"


async def bad_input(client):
    """Bad arguments are error results that say what is wrong; an unknown tool is a protocol error."""
    result, text = await call(client, "execute", {"language": "brainfudge", "code": "+"})
    assert result.is_error and "brainfudge" in text and "python" in text and "javascript" in text, text
    result, text = await call(client, "execute", {"language": "python"})
    assert result.is_error and "code" in text, text
    result, text = await call(client, "execute", {"language": "python", "code": "1", "input": "x"})
    assert result.is_error and "input" in text and "stdin" in text, text
    result, text = await call(client, "execute", {"language": "python", "code": "1", "timeout": 100000})
    assert result.is_error and "timeout" in text, text
    result, text = await call(client, "execute", {"language": "python", "code": "1", "timeout": "soon"})
    assert result.is_error and "soon" in text, text
    try:
        await client.call_tool("format_disk", {})
    except MCPError as e:
        print("unknown tool:", e)
        assert "format_disk" in str(e), e
    else:
        raise AssertionError("an unknown tool is a protocol error")


async def cancel(client):
    """A call the client gives up on takes its job with it: the sleeping program is cancelled."""
    code = "import time\nprint('sleeping', flush=True)\ntime.sleep(30)"
    try:
        await client.call_tool("execute", {"language": "python", "code": code, "timeout": 40}, read_timeout_seconds=3)
    except Exception as e:  # the SDK's own timeout, after which it tells the server
        print("call abandoned:", type(e).__name__, e)
    else:
        raise AssertionError("a 30 s sleep answered within 3 s")
    async with httpx2.AsyncClient(timeout=10) as http:
        for _ in range(150):
            rows = (await http.get(f"{os.environ['CB_SERVER']}/executions?limit=5")).json()
            sleeper = next(r for r in rows if r["language"] == "python")
            if sleeper["status"] == "cancelled":
                print("the job was cancelled:", sleeper["execution_id"])
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"the job was not cancelled: {sleeper}")


SCENARIOS = {"tools": tools, "runs": runs, "concurrent": concurrent, "bad_input": bad_input, "cancel": cancel}


async def main(names):
    async with Client(server(), mode=MODE, read_timeout_seconds=120) as client:
        for tool in (await client.list_tools()).tools:
            SCHEMAS[tool.name] = tool.output_schema
        for name in names:
            began = time.monotonic()
            await SCENARIOS[name](client)
            print(f"--- {name} passed ({ERA}, {time.monotonic() - began:.1f} s)")


asyncio.run(main(sys.argv[1:]))
