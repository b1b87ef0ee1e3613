//! The web console in headless Chromium (Debian's `chromium`, driven by playwright-core from
//! npm; both installed by scripts/setup.sh), against a real node: tests/console/e2e.mjs loads
//! the playground and the live view, runs programs, test cases and an interactive program,
//! follows a shared link, and cancels a sleeping job from the live view.

mod common;

use std::time::Duration;

use common::{installed, run_client, TestNode};
use serde_json::{json, Value};

/// Runs tests/console/e2e.mjs against `node` with the extra environment; its report.
async fn browser(node: &TestNode, env: &[(&str, String)]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/e2e.mjs");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(script)
        .env("CB_SERVER", &node.url)
        .env("CB_NODE_MODULES", installed("npm-clients/node_modules"))
        .envs(env.iter().cloned());
    run_client(command, Duration::from_secs(300)).await
}

#[tokio::test]
async fn the_playground_and_the_live_view_work_in_a_real_browser() {
    let node = TestNode::start(2).await;
    let mut env = vec![("CB_NODE_ID", node.node().node_id().to_string())];
    if let Ok(dir) = std::env::var("CODEBEAKER_SCREENSHOTS") {
        env.push(("CB_SCREENSHOTS", dir));
    }
    let report = browser(&node, &env).await;
    assert!(report.contains("--- passed"), "{report}");
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn the_live_views_endpoints_list_recent_executions_and_the_backlog() {
    let node = TestNode::start(2).await;
    let mut ids = Vec::new();
    for language in ["python", "bash", "python"] {
        let code = if language == "bash" {
            "echo hi"
        } else {
            "print(1)"
        };
        let record = node.run(json!({"language": language, "code": code})).await;
        ids.push(record["execution_id"].as_str().unwrap().to_string());
    }
    let (status, body) = node.get("/executions?limit=2").await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<Value> = serde_json::from_str(&body).unwrap();
    let listed: Vec<&str> = rows
        .iter()
        .map(|r| r["execution_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [ids[2].as_str(), ids[1].as_str()],
        "newest first, at most the limit"
    );
    assert_eq!(rows[1]["language"], "bash");
    assert_eq!(rows[1]["status"], "completed");
    assert!(
        rows[0].get("stdout").is_none(),
        "no output in the list: {}",
        rows[0]
    );
    let (_, body) = node.get("/executions").await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap().len(), 3);

    for (query, status, code) in [
        ("limit=0", 422, "invalid_field"),
        ("limit=501", 422, "invalid_field"),
        ("limit=many", 400, "invalid_query"),
        ("since=yesterday", 400, "invalid_query"),
    ] {
        let (got, body) = node.get(&format!("/executions?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.contains(code), "{query}: {body}");
    }

    let (status, body) = node.get("/queue").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"high": 0, "normal": 0, "low": 0})
    );
}

#[tokio::test]
async fn with_api_keys_the_pages_ask_for_one_and_send_it() {
    let mut config = common::test_config(1);
    config.api.keys = vec!["console-test-key".into()];
    let node = TestNode::with_config(config).await;
    let report = browser(&node, &[("CB_KEY", "console-test-key".into())]).await;
    assert!(report.contains("with a key: ok"), "{report}");
}
