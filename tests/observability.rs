//! Request ids, response times and HTTP metrics on every response.

mod common;

use codebeaker::node::Role;
use common::{NatsServer, NodeProcess, TestNode};
use serde_json::json;

#[tokio::test]
async fn every_response_carries_a_request_id_and_its_response_time() {
    let node = TestNode::start(1).await;
    let http = reqwest::Client::new();
    let echoed = http
        .get(format!("{}/languages", node.url))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-42");
    let time = echoed.headers()["x-response-time"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        time.ends_with("ms") && time.trim_end_matches("ms").parse::<f64>().is_ok(),
        "{time}"
    );

    // Errors get them too; an unsafe id is replaced by a fresh UUID.
    let error = http
        .get(format!("{}/nowhere", node.url))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_eq!(error.status(), 404);
    let id = error.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert!(error.headers().contains_key("x-response-time"));
}

#[tokio::test]
async fn http_requests_are_counted_by_route_template_not_raw_path() {
    let node = TestNode::start(1).await;
    for _ in 0..2 {
        let (status, _) = node
            .get(&format!("/execution/{}", uuid::Uuid::new_v4()))
            .await;
        assert_eq!(status, 404);
    }
    node.python("print(1)").await;
    let (_, text) = node.get("/metrics").await;
    assert!(
        text.contains(
            r#"codebeaker_http_requests_total{method="GET",route="/execution/{id}",status="404"} 2"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"codebeaker_http_requests_total{method="POST",route="/execute",status="200"} 1"#
    ));
    assert!(text.contains(
        r#"codebeaker_http_request_duration_seconds_count{method="POST",route="/execute"} 1"#
    ));
    // The /metrics request itself is the one in flight while the text is rendered.
    assert!(
        text.contains("codebeaker_http_requests_in_flight 1"),
        "{text}"
    );
}

/// The value of one series in Prometheus text, e.g. `codebeaker_workers{state="idle"}`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_jobs_by_language_and_status() {
    let node = TestNode::start(1).await;
    let runs = [
        json!({"language": "python", "code": "print(1)"}),
        json!({"language": "python", "code": "import sys; sys.exit(3)"}),
        json!({"language": "python", "code": "while True: pass", "timeout": 0.5}),
        json!({"language": "c", "code": "int main( {"}),
        json!({"language": "bash", "code": "echo hi"}),
    ];
    let mut statuses = Vec::new();
    for request in runs {
        statuses.push(
            node.run(request).await["status"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        statuses,
        [
            "completed",
            "completed",
            "time_limit_exceeded",
            "compile_error",
            "completed"
        ]
    );

    // A worker stores the record, then reports to the metrics actor: wait for the last report.
    let settled = common::eventually(std::time::Duration::from_secs(5), || async {
        let (_, text) = node.get("/metrics").await;
        value(&text, r#"codebeaker_workers{state="idle"}"#) == Some(1.0)
            && value(
                &text,
                r#"codebeaker_executions_total{language="bash",status="completed"}"#,
            ) == Some(1.0)
    })
    .await;
    assert!(settled);
    let (_, text) = node.get("/metrics").await;
    let count = |series: &str| value(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    let executions = |language: &str, status: &str| {
        count(&format!(
            r#"codebeaker_executions_total{{language="{language}",status="{status}"}}"#
        ))
    };
    assert_eq!(executions("python", "completed"), 2.0);
    assert_eq!(executions("python", "time_limit_exceeded"), 1.0);
    assert_eq!(executions("c", "compile_error"), 1.0);
    assert_eq!(executions("bash", "completed"), 1.0);
    assert_eq!(
        count(r#"codebeaker_execution_duration_seconds_count{language="python"}"#),
        3.0
    );
    // The time limit was 0.5 s, so python's durations add up to at least that.
    assert!(count(r#"codebeaker_execution_duration_seconds_sum{language="python"}"#) >= 0.5);
    assert_eq!(count("codebeaker_queue_wait_seconds_count"), 5.0);
    assert_eq!(count(r#"codebeaker_workers{state="idle"}"#), 1.0);
    assert_eq!(count(r#"codebeaker_workers{state="busy"}"#), 0.0);
    assert_eq!(
        count(r#"codebeaker_actor_restarts_total{actor="worker"}"#),
        0.0
    );
    // No container is held ready before a job arrives (each is created for its job).
    assert_eq!(
        count(r#"codebeaker_container_pool_size{language="python"}"#),
        0.0
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        count(&format!(
            r#"codebeaker_node_info{{role="serve",version="{version}"}}"#
        )),
        1.0
    );
}

#[tokio::test]
async fn queue_pending_shows_the_backlog_by_priority() {
    // An API node without workers beside it: whatever is submitted stays in the stream.
    let nats = NatsServer::start();
    let mut config = common::test_config(0);
    config.nats.url = Some(nats.url.clone());
    let node = TestNode::join(config, Role::Api).await;
    for priority in ["low", "low", "high", "normal", "low"] {
        let (status, _) = node
            .post_to(
                "/execute/async",
                json!({"language": "python", "code": "print(1)", "priority": priority}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let expected = [("high", 1.0), ("normal", 1.0), ("low", 3.0)];
    // The gauge is refreshed with each heartbeat (every 5 s).
    let seen = common::eventually(std::time::Duration::from_secs(15), || async {
        let (_, text) = node.get("/metrics").await;
        expected.iter().all(|(priority, n)| {
            value(
                &text,
                &format!(r#"codebeaker_queue_pending{{priority="{priority}"}}"#),
            ) == Some(*n)
        })
    })
    .await;
    let (_, text) = node.get("/metrics").await;
    assert!(seen, "{text}");
}

/// One grep follows a job across nodes: the API node's lines about the request and the
/// worker node's lines about its job carry the same request id and execution id.
#[tokio::test]
async fn logs_on_both_nodes_carry_the_request_and_execution_ids() {
    let nats = NatsServer::start();
    let worker = NodeProcess::start("worker", &nats.url, 1).await;
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let request_id = format!("trace-{}", uuid::Uuid::new_v4().simple());
    let record = api
        .execute_as(
            &request_id,
            serde_json::json!({"language": "python", "code": "print('logged')"}),
        )
        .await;
    let execution_id = record["execution_id"].as_str().unwrap().to_string();
    let about = |node: &NodeProcess| -> Vec<serde_json::Value> {
        node.log_lines()
            .into_iter()
            .filter(|line| line["span"]["request_id"] == request_id.as_str())
            .collect()
    };
    let messages = |lines: &[serde_json::Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["fields"]["message"].as_str().unwrap().to_string())
            .collect()
    };
    // The record is stored before the worker logs that it finished: give the log a moment.
    common::eventually(std::time::Duration::from_secs(5), || async {
        about(&worker).len() >= 2
    })
    .await;

    let on_worker = about(&worker);
    assert_eq!(
        messages(&on_worker),
        ["job taken", "job finished"],
        "{on_worker:?}"
    );
    assert!(on_worker
        .iter()
        .all(|l| l["span"]["execution_id"] == execution_id.as_str()));
    assert_eq!(on_worker[1]["fields"]["status"], "completed");

    let on_api = about(&api);
    assert_eq!(messages(&on_api), ["job queued", "request"], "{on_api:?}");
    assert!(on_api
        .iter()
        .all(|l| l["span"]["execution_id"] == execution_id.as_str()));
    assert_eq!(on_api[1]["span"]["route"], "/execute");
    assert_eq!(on_api[1]["fields"]["status"], 200);
}

/// Metric names a PromQL text refers to, without histogram suffixes.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, _) in text.match_indices("codebeaker_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(name.clone(), |n, s| {
                n.strip_suffix(s).map(str::to_string).unwrap_or(n)
            });
        names.insert(base);
    }
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_on_metrics() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!(
        "../observability/grafana/dashboards/codebeaker.json"
    ))
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string())
        })
        .collect();
    let wanted = metric_names(&exprs.join("\n"));
    assert!(wanted.len() >= 8, "{wanted:?}");

    let node = TestNode::start(1).await;
    node.python("print(1)").await;
    let (_, text) = node.get("/metrics").await;
    for name in &wanted {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is not on /metrics"
        );
    }
}
