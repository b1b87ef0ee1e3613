//! Request ids, response times and HTTP metrics on every response.

mod common;

use common::{NatsServer, NodeProcess, TestNode};

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

#[tokio::test]
async fn metrics_say_what_the_node_is_and_how_long_jobs_queued() {
    let node = TestNode::start(1).await;
    node.python("print(1)").await;
    node.python("print(2)").await;
    let (_, text) = node.get("/metrics").await;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            r#"codebeaker_node_info{{role="serve",version="{version}"}} 1"#
        )),
        "{text}"
    );
    assert!(
        text.contains("codebeaker_queue_wait_seconds_count 2"),
        "{text}"
    );
}

#[tokio::test]
async fn a_worker_logs_each_job_with_its_execution_id_in_json() {
    let nats = NatsServer::start();
    let worker = NodeProcess::start("worker", &nats.url, 1).await;
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let record = api
        .execute(serde_json::json!({"language": "python", "code": "print('logged')"}))
        .await;
    let id = record["execution_id"].as_str().unwrap().to_string();
    let about_job = || -> Vec<serde_json::Value> {
        worker
            .log_lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
            .filter(|line: &serde_json::Value| line["span"]["execution_id"] == id.as_str())
            .collect()
    };
    // The record is stored before the worker logs that it finished: give the log a moment.
    common::eventually(std::time::Duration::from_secs(5), || async {
        about_job().len() >= 2
    })
    .await;
    let about_job = about_job();
    let messages: Vec<&str> = about_job
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["job taken", "job finished"], "{about_job:?}");
    assert_eq!(about_job[1]["fields"]["status"], "completed");
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
