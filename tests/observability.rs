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
    assert_eq!(messages(&on_worker), ["job taken", "job finished"], "{on_worker:?}");
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
