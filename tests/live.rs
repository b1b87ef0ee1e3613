//! Live output: `GET /execution/{id}/events` streams a job's status, output chunks and usage
//! while it runs, across nodes (the job runs on a worker node, the client reads an API node),
//! and then its final record; a client that comes after the end gets the final record.

mod common;

use std::time::{Duration, Instant};

use codebeaker::node::Role;
use common::{NatsServer, TestNode};
use futures::StreamExt;
use serde_json::{json, Value};

/// One event as read: when it came, its name, its data.
struct Seen {
    at: Instant,
    name: String,
    data: Value,
}

/// Reads the execution's events until the stream ends (after `final`), within a minute.
async fn events(node: &TestNode, id: &str) -> Vec<Seen> {
    use eventsource_stream::Eventsource;
    let response = reqwest::get(format!("{}/execution/{id}/events", node.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = response.bytes_stream().eventsource();
    let mut seen = Vec::new();
    let reading = async {
        while let Some(event) = stream.next().await {
            let event = event.unwrap();
            seen.push(Seen {
                at: Instant::now(),
                name: event.event,
                data: serde_json::from_str(&event.data).unwrap(),
            });
        }
    };
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("the stream ends after the final record");
    seen
}

fn names(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn output_streams_from_a_worker_node_while_the_job_runs_then_the_final_record() {
    let nats = NatsServer::start();
    let api = TestNode::on(&nats, Role::Api, 0).await;
    let worker = TestNode::on(&nats, Role::Worker, 1).await;

    let code = "import sys, time\n\
        for i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.4)\n\
        print('oops', file=sys.stderr, flush=True)\n\
        end = time.time() + 0.6\nwhile time.time() < end: pass\nprint('é' * 3)";
    let (status, body) = api
        .post_to(
            "/execute/async",
            json!({"language": "python", "code": code}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["execution_id"].as_str().unwrap().to_string();
    let seen = events(&api, &id).await;
    let names = names(&seen);

    assert!(matches!(names[0], "status"), "{names:?}");
    assert!(
        seen.iter()
            .any(|s| s.name == "status" && s.data["status"] == "running"),
        "{names:?}"
    );
    assert_eq!(names.last(), Some(&"final"), "{names:?}");
    let last = seen.last().unwrap();
    let record = &last.data;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["node"], worker.node().node_id(), "{record}");
    // The output came in chunks as it was written, the first long before the end.
    let stdout: String = seen
        .iter()
        .filter(|s| s.name == "stdout")
        .map(|s| s.data["data"].as_str().unwrap())
        .collect();
    assert_eq!(stdout, record["stdout"].as_str().unwrap());
    // Chunks split where the program's writes split ("tick", " ", "0", "\n" at times): the
    // first line is whole once its newline has come.
    let mut line = String::new();
    let first_line = seen
        .iter()
        .filter(|s| s.name == "stdout")
        .find(|s| {
            line.push_str(s.data["data"].as_str().unwrap());
            line.contains('\n')
        })
        .unwrap();
    assert!(line.starts_with("tick 0\n"), "{line:?}");
    assert!(
        last.at - first_line.at > Duration::from_millis(900),
        "the first line came {:?} before the end",
        last.at - first_line.at
    );
    let stderr: Vec<&Value> = seen
        .iter()
        .filter(|s| s.name == "stderr")
        .map(|s| &s.data)
        .collect();
    assert_eq!(stderr, [&json!({"data": "oops\n"})]);
    // Usage every 250 ms or so while it ran (about 1.8 s): CPU grows by the busy loop.
    let usage: Vec<&Value> = seen
        .iter()
        .filter(|s| s.name == "usage")
        .map(|s| &s.data)
        .collect();
    assert!(usage.len() >= 4, "{usage:?}");
    let cpu = |u: &Value| u["cpu_time_ms"].as_u64().unwrap();
    assert!(
        cpu(usage.last().unwrap()) >= cpu(usage[0]) + 300,
        "{usage:?}"
    );
    if !common::gvisor() {
        assert!(
            usage
                .iter()
                .all(|u| u["memory_bytes"].as_u64().unwrap() > 0),
            "{usage:?}"
        );
    }
    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test]
async fn a_client_that_comes_after_the_end_gets_the_final_record() {
    let node = TestNode::start(1).await;
    let record = node.python("print('done')").await;
    let id = record["execution_id"].as_str().unwrap();
    let seen = events(&node, id).await;
    assert_eq!(names(&seen), ["status", "final"]);
    assert_eq!(seen[0].data, json!({"status": "completed"}));
    assert_eq!(seen[1].data, record);
    node.shutdown().await;
}

#[tokio::test]
async fn events_of_no_such_execution_are_a_clear_error() {
    let node = TestNode::start(0).await;
    let (status, body) = node
        .get(&format!("/execution/{}/events", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("not_found"), "{body}");
    let (status, body) = node.get("/execution/nope/events").await;
    assert_eq!(status, 400, "{body}");
    node.shutdown().await;
}
