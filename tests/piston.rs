//! The Piston v2 API at `/api/v2`: piston-client 1.0.2 (npm, installed by scripts/setup.sh,
//! run unmodified by tests/piston/client.mjs) and raw HTTP, against a real node.

mod common;

use std::time::Duration;

use common::{test_config, TestNode};
use serde_json::{json, Value};

/// Runs one scenario of client.mjs against `node`; panics with its output unless it passed.
async fn client(node: &TestNode, scenario: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/piston/client.mjs");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .arg(scenario)
        .env("CB_SERVER", &node.url)
        .env(
            "CB_NODE_MODULES",
            common::installed("npm-clients/node_modules"),
        );
    common::run_client(command, Duration::from_secs(180)).await
}

#[tokio::test]
async fn piston_client_lists_runtimes_and_runs_c_javascript_and_python() {
    let node = TestNode::start(3).await;
    client(&node, "runtimes").await;
    client(&node, "languages").await;
    client(&node, "unknown").await;
}

#[tokio::test]
async fn piston_client_runs_aliases_files_and_every_ending() {
    let node = TestNode::start(2).await;
    client(&node, "details").await;
}

#[tokio::test]
async fn the_websocket_streams_takes_stdin_and_signals_and_closes_as_piston_does() {
    let node = TestNode::start(3).await;
    client(&node, "session").await;
    client(&node, "session_compiled").await;
    client(&node, "session_refusals").await;
    assert!(
        common::eventually(Duration::from_secs(30), || async {
            node.leftover_containers().await.is_empty()
        })
        .await,
        "refused sessions leave no job running"
    );
}

/// A raw POST with the given Content-Type.
async fn execute(
    node: &TestNode,
    body: &str,
    content_type: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v2/execute", node.url))
        .header("content-type", content_type)
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn any_content_type_is_read_as_json_and_errors_are_400_messages() {
    let node = TestNode::start(1).await;
    let hello =
        json!({"language": "python", "version": "3.x", "files": [{"content": "print('hi')"}]});
    let (status, body) = execute(&node, &hello.to_string(), "text/plain;charset=UTF-8", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["stdout"], "hi\n");
    assert!(
        body["run"]["memory"].as_u64().unwrap() > 0 && body["run"]["wall_time"].is_u64(),
        "{body}"
    );
    for (bad, message) in [
        (
            json!({"version": "*", "files": []}),
            "language is required as a string",
        ),
        (
            json!({"language": "python", "files": []}),
            "version is required as a string",
        ),
        (
            json!({"language": "python", "version": "*"}),
            "files is required as an array",
        ),
        (
            json!({"language": "python", "version": "*", "files": [{"content": "1"}], "run_memory_limit": 1e15}),
            "run_memory_limit cannot exceed the configured limit of 2147483648",
        ),
    ] {
        let (status, body) = execute(&node, &bad.to_string(), "application/json", None).await;
        assert_eq!((status, body), (400, json!({"message": message})));
    }
    let (status, body) = execute(&node, "{not json", "application/json", None).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("not JSON"),
        "{body}"
    );
    let tiny = json!({"language": "python", "version": "*", "run_memory_limit": 1000,
                      "files": [{"content": "print(1)"}]});
    let (status, body) = execute(&node, &tiny.to_string(), "application/json", None).await;
    assert_eq!(status, 400, "below CodeBeaker's bounds: {body}");
    assert_eq!(node.leftover_containers().await, Vec::<String>::new());
}

#[tokio::test]
async fn with_api_keys_the_piston_api_is_open_only_when_configured_so() {
    let hello = json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}]})
        .to_string();
    let mut config = test_config(1);
    config.api.keys = vec!["piston-test-key".into()];
    let closed = TestNode::with_config(config.clone()).await;
    assert_eq!(
        execute(&closed, &hello, "application/json", None).await.0,
        401
    );
    assert_eq!(
        execute(&closed, &hello, "application/json", Some("piston-test-key"))
            .await
            .0,
        200
    );
    closed.shutdown().await;

    config.piston.open = true;
    let open = TestNode::with_config(config).await;
    assert_eq!(
        execute(&open, &hello, "application/json", None).await.0,
        200
    );
    client(&open, "runtimes").await;
    let (status, _) = open
        .post(json!({"language": "python", "code": "print(1)"}))
        .await;
    assert_eq!(status, 401, "the rest of the API still wants its key");
}
