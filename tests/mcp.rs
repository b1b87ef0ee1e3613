//! The MCP server, over both transports and both protocol eras, driven by the official SDKs:
//! the Python `mcp` package (2.3.0: the stateless 2026-07-28 revision through
//! `server/discover`, and the initialize handshake) and `@modelcontextprotocol/sdk` (npm 1.32.2:
//! the initialize handshake), both installed by scripts/setup.sh and run unmodified by
//! tests/mcp/client.py and client.mjs. Raw HTTP and raw stdio cover what the SDKs do not show:
//! status codes, the Origin rule, API keys, a clean stdout, and the end of stdin.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{containers_of, installed, run_client, test_config, TestNode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const KEY: &str = "mcp-test-key";

/// Runs a test client (`python client.py SCENARIO...` or `node client.mjs`) with the given
/// environment; panics with its output unless it passed.
async fn client(program: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().cloned())
        .env("CB_BIN", env!("CARGO_BIN_EXE_codebeaker"))
        .env("CB_NODE_MODULES", installed("npm-clients/node_modules"));
    run_client(command, Duration::from_secs(240)).await
}

/// The Python SDK's scenarios against `target` (a /mcp URL, or `stdio` with `stdio_args`) in
/// `mode` (`auto`: 2026-07-28 by discovery; `legacy`: initialize); `node` is where `cancel`
/// looks for its job.
async fn python(
    node: &TestNode,
    target: &str,
    stdio_args: &str,
    mode: &str,
    scenarios: &[&str],
) -> String {
    let python = installed("mcp-venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
    let args: Vec<&str> = std::iter::once(script)
        .chain(scenarios.iter().copied())
        .collect();
    let env = [
        ("CB_MCP", target.to_string()),
        ("CB_ARGS", stdio_args.to_string()),
        ("CB_MODE", mode.to_string()),
        ("CB_SERVER", node.url.clone()),
    ];
    client(&python, &args, &env).await
}

async fn typescript(env: &[(&str, String)]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.mjs");
    client("node", &[script], env).await
}

const ALL: [&str; 5] = ["tools", "runs", "concurrent", "bad_input", "cancel"];

#[tokio::test]
async fn the_python_sdk_over_http_lists_runs_refuses_and_cancels_in_both_eras() {
    let node = TestNode::start(3).await;
    let url = format!("{}/mcp", node.url);
    let report = python(&node, &url, "", "auto", &ALL).await;
    assert!(report.contains("--- cancel passed"), "{report}");
    // In the initialize era a cancel is a notification on a POST of its own, which a server
    // without sessions cannot tie to the call: there the job runs to its own end.
    let report = python(&node, &url, "", "legacy", &ALL[..4]).await;
    assert!(report.contains("--- bad_input passed"), "{report}");
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn the_python_sdk_over_stdio_lists_runs_refuses_and_cancels_in_both_eras() {
    let node = TestNode::start(3).await;
    let args = format!("--url {}", node.url);
    for mode in ["auto", "legacy"] {
        let report = python(&node, "stdio", &args, mode, &ALL).await;
        assert!(report.contains("--- cancel passed"), "{report}");
    }
}

#[tokio::test]
async fn the_typescript_sdk_runs_code_over_http_and_stdio() {
    let node = TestNode::start(2).await;
    typescript(&[("CB_MCP", format!("{}/mcp", node.url))]).await;
    typescript(&[("CB_ARGS", format!("--url {}", node.url))]).await;
}

#[tokio::test]
async fn stdio_runs_and_cancels_jobs_through_a_server_over_nats() {
    let node = TestNode::start(2).await;
    let args = format!("--nats {}", node.nats_url());
    python(&node, "stdio", &args, "auto", &["runs", "cancel"]).await;
}

async fn post(url: &str, body: Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    (response.status().as_u16(), response.text().await.unwrap())
}

fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}})
}

#[tokio::test]
async fn http_answers_notifications_versions_origins_and_methods_as_the_transport_says() {
    let node = TestNode::start(1).await;
    let url = format!("{}/mcp", node.url);
    let (status, body) = post(&url, initialize(1), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["result"]["serverInfo"]["name"],
        "codebeaker"
    );

    let version = ("mcp-protocol-version", "2025-11-25");
    let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, body) = post(&url, notification, &[version]).await;
    assert_eq!(
        status, 202,
        "a notification is accepted with no answer: {body}"
    );

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, body) = post(
        &url,
        list.clone(),
        &[("mcp-protocol-version", "1999-01-01")],
    )
    .await;
    assert_eq!(status, 400, "an unsupported version is refused: {body}");
    let (status, body) = post(&url, list.clone(), &[version]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("run_tests"), "{body}");

    for origin in [
        "http://evil.example",
        "http://127.0.0.1.evil.example:8000",
        "null",
    ] {
        let (status, body) = post(&url, initialize(3), &[("origin", origin)]).await;
        assert_eq!(status, 403, "Origin {origin} is foreign: {body}");
    }
    for origin in [
        "http://127.0.0.1:5173",
        "http://localhost:3000",
        "http://[::1]:8000",
    ] {
        let (status, body) = post(&url, initialize(4), &[("origin", origin)]).await;
        assert_eq!(status, 200, "Origin {origin} is this machine's: {body}");
    }

    // A body over `limits.max_body_bytes` (2 MiB) is refused before it is read.
    let code = "#".repeat(3 << 20);
    let huge = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "execute", "arguments": {"language": "python", "code": code}}});
    let (status, body) = post(&url, huge, &[version]).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("body_too_large"), "{body}");

    let (status, body) = node.get("/mcp").await;
    assert_eq!(
        status, 405,
        "no server-sent stream without sessions: {body}"
    );
    assert!(body.contains("method_not_allowed"), "{body}");
}

#[tokio::test]
async fn http_wants_the_api_key_and_a_configured_origin_may_call() {
    let mut config = test_config(1);
    config.api.keys = vec![KEY.into()];
    config.api.cors_origins = vec!["https://console.example.com".into()];
    let node = TestNode::with_config(config).await;
    let url = format!("{}/mcp", node.url);
    let (status, body) = post(&url, initialize(1), &[]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    let bearer = format!("Bearer {KEY}");
    let auth = ("authorization", bearer.as_str());
    // A configured origin counts with its default port; the same host on another port is
    // another origin.
    for (origin, expected) in [
        ("https://console.example.com", 200),
        ("https://console.example.com:8443", 403),
    ] {
        let (status, body) = post(&url, initialize(1), &[auth, ("origin", origin)]).await;
        assert_eq!(status, expected, "Origin {origin}: {body}");
    }

    let python = installed("mcp-venv/bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
    let env = [
        ("CB_MCP", url),
        ("CB_MODE", "auto".into()),
        ("CB_KEY", KEY.into()),
    ];
    client(&python, &[script, "tools"], &env).await;
}

/// `codebeaker mcp` with piped stdin and stdout, spoken to in raw JSON-RPC lines.
struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Every line stdout carried.
    seen: Vec<String>,
    /// Read all along, so that the logs never fill the pipe and stall the process.
    stderr: tokio::task::JoinHandle<String>,
}

impl Session {
    fn spawn(args: &[&str], cwd: &std::path::Path) -> Session {
        let mut child = Command::new(env!("CARGO_BIN_EXE_codebeaker"))
            .arg("mcp")
            .args(args)
            .current_dir(cwd)
            // Every log line there is: none of them may reach stdout.
            .env("RUST_LOG", "trace")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("codebeaker mcp runs");
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Session {
            stdin: child.stdin.take(),
            child,
            stdout,
            seen: Vec::new(),
            stderr,
        }
    }

    async fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    }

    /// The answer to request `id`; every line before it must be a JSON-RPC message too.
    async fn answer(&mut self, id: u64) -> Value {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(90), self.stdout.next_line())
                .await
                .expect("an answer within 90 s")
                .unwrap()
                .unwrap_or_else(|| panic!("stdout ended; it carried {:?}", self.seen));
            self.seen.push(line.clone());
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("stdout carried a line that is not JSON ({e}): {line}"));
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if message["id"] == id {
                return message;
            }
        }
    }

    /// Closes stdin; the process must end by itself, successfully, with nothing more on stdout.
    async fn close(mut self) -> String {
        drop(self.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the process exits once stdin closes")
            .unwrap();
        assert!(status.success(), "{status}");
        let rest = self.stdout.next_line().await.unwrap();
        assert_eq!(rest, None, "stdout after the last answer");
        self.stderr.await.unwrap()
    }

    /// The handshake, then a python program's run; returns its record.
    async fn hello(&mut self) -> Value {
        self.send(initialize(1)).await;
        let answer = self.answer(1).await;
        assert_eq!(
            answer["result"]["protocolVersion"], "2025-11-25",
            "{answer}"
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "execute", "arguments": {"language": "python", "code": "print('hi')"}}});
        self.send(call).await;
        let answer = self.answer(2).await;
        answer["result"]["structuredContent"].clone()
    }
}

#[tokio::test]
async fn stdout_carries_json_rpc_alone_and_the_end_of_stdin_ends_the_process() {
    let node = TestNode::start(1).await;
    let cwd = tempfile::tempdir().unwrap();
    // A client that leaves before saying anything.
    Session::spawn(&["--url", &node.url], cwd.path())
        .close()
        .await;
    let mut mcp = Session::spawn(&["--url", &node.url], cwd.path());
    let record = mcp.hello().await;
    assert_eq!(
        (record["status"].as_str(), record["stdout"].as_str()),
        (Some("completed"), Some("hi\n"))
    );
    let stderr = mcp.close().await;
    assert!(
        stderr.contains("TRACE") || stderr.contains("\"TRACE\""),
        "the logs went to stderr: {stderr}"
    );
}

#[tokio::test]
async fn mcp_alone_starts_a_node_of_its_own_and_leaves_nothing_behind() {
    let cwd = tempfile::tempdir().unwrap();
    let mut mcp = Session::spawn(&["--workers", "1"], cwd.path());
    let record = mcp.hello().await;
    assert_eq!(
        (record["status"].as_str(), record["stdout"].as_str()),
        (Some("completed"), Some("hi\n"))
    );
    let node = record["node"]
        .as_str()
        .expect("the record names its node")
        .to_string();
    assert!(node.starts_with("mcp-"), "a node id of its own: {node}");
    let stderr = mcp.close().await;
    assert!(
        stderr.contains("a node of its own"),
        "it says what it does: {stderr}"
    );
    assert!(
        containers_of(&node).is_empty(),
        "its containers are removed"
    );
    let data = std::env::temp_dir().join(format!("codebeaker-{node}"));
    assert!(
        !data.exists(),
        "its NATS files are removed: {}",
        data.display()
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing written where it ran"
    );
}
