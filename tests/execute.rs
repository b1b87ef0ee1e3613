//! The basics of POST /execute against real Docker, and the read-only endpoints.

mod common;

use codebeaker::languages::Languages;
use common::TestNode;
use serde_json::{json, Value};

#[tokio::test]
async fn hello_world() {
    let node = TestNode::start(2).await;
    let r = node.python("print('hello, world')").await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "hello, world\n");
    assert_eq!(r["stderr"], "");
    assert_eq!(r["stdout_truncated"], false);
    assert_eq!(r["language"], "python");
    assert!(r["memory_peak_bytes"].as_u64().unwrap() > 1_000_000, "{r}");
    assert!(r["duration_ms"].as_u64().is_some());
    assert!(uuid::Uuid::parse_str(r["execution_id"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn stdin_reaches_the_program_and_is_closed() {
    let node = TestNode::start(1).await;
    let r = node
        .run(json!({
            "language": "py",
            "code": "import sys\ndata = sys.stdin.read()\nprint(data.upper(), end='')",
            "stdin": "line one\nline two\n",
        }))
        .await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["stdout"], "LINE ONE\nLINE TWO\n");
}

#[tokio::test]
async fn a_non_zero_exit_is_completed_with_its_code() {
    let node = TestNode::start(1).await;
    let r = node
        .python("import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)")
        .await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["stderr"], "bye\n");
    assert_eq!(r["signal"], Value::Null);
}

#[tokio::test]
async fn an_uncaught_exception_exits_1_with_its_traceback() {
    let node = TestNode::start(1).await;
    let r = node.python("raise ValueError('boom')").await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["exit_code"], 1);
    assert!(r["stderr"].as_str().unwrap().contains("ValueError: boom"));
}

#[tokio::test]
async fn the_declared_version_is_the_image_version() {
    let node = TestNode::start(1).await;
    let r = node
        .python("import platform\nprint(platform.python_version(), end='')")
        .await;
    let declared = Languages::load(None)
        .unwrap()
        .get("python")
        .unwrap()
        .version
        .clone();
    assert_eq!(r["stdout"], declared.as_str());
    assert_eq!(r["version"], declared.as_str());
}

#[tokio::test]
async fn ten_concurrent_jobs_all_succeed() {
    let node = TestNode::start(4).await;
    let runs = (0..10).map(|i| {
        let node = &node;
        async move { (i, node.python(&format!("print({i} * {i})")).await) }
    });
    for (i, r) in futures::future::join_all(runs).await {
        assert_eq!(r["status"], "completed", "job {i}: {r}");
        assert_eq!(r["stdout"], format!("{}\n", i * i));
    }
    let ids = node.leftover_containers().await;
    assert!(ids.is_empty(), "containers left: {ids:?}");
}

#[tokio::test]
async fn languages_lists_python_with_aliases_and_limits() {
    let node = TestNode::start(1).await;
    let (status, body) = node.get("/languages").await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).unwrap();
    let python = &list[0];
    assert_eq!(python["name"], "python");
    assert_eq!(python["aliases"], json!(["py", "python3"]));
    assert_eq!(
        python["limits"]["timeout"],
        json!({"default": 5.0, "min": 0.1, "max": 60.0})
    );
    assert_eq!(python["limits"]["output_limit"]["default"], "64k");
    assert_eq!(python["limits"]["compile_timeout"], Value::Null);
    let java = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "java")
        .unwrap();
    assert_eq!(java["compiled"], true);
    assert_eq!(
        java["limits"]["memory_limit"]["default"], "512m",
        "the language's own default"
    );
}

#[tokio::test]
async fn health_reports_the_worker_pool() {
    let node = TestNode::start(3).await;
    let (status, body) = node.get("/health").await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["workers"], 3);
    assert_eq!(health["node"], node.node().node_id());
}

#[tokio::test]
async fn metrics_count_executions_by_language_and_status() {
    let node = TestNode::start(2).await;
    node.python("print(1)").await;
    node.python("import sys; sys.exit(2)").await;
    let r = node
        .run(json!({"language": "python", "code": "while True: pass", "timeout": 0.5}))
        .await;
    assert_eq!(r["status"], "time_limit_exceeded");
    let (status, text) = node.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"codebeaker_executions_total{language="python",status="completed"} 2"#),
        "{text}"
    );
    assert!(text.contains(
        r#"codebeaker_executions_total{language="python",status="time_limit_exceeded"} 1"#
    ));
    assert!(text.contains(r#"codebeaker_execution_duration_seconds_count{language="python"} 3"#));
}

#[tokio::test]
async fn stderr_can_join_stdout_and_compiler_options_reach_the_compiler() {
    let node = TestNode::start(2).await;
    let merged = node
        .run(json!({"language": "python", "stderr_to_stdout": true,
            "code": "import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr, flush=True)\nprint('out again')"}))
        .await;
    assert_eq!(merged["stdout"], "out\nerr\nout again\n", "{merged}");
    assert_eq!(merged["stderr"], "");
    let optioned = node
        .run(
            json!({"language": "c", "compiler_options": "-DANSWER=42 -Wall",
            "code": "#include <stdio.h>\nint main(){printf(\"%d\\n\", ANSWER);}"}),
        )
        .await;
    assert_eq!(optioned["stdout"], "42\n", "{optioned}");
}
