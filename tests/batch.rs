//! Batches: `POST /batch` answers at once or waits for every record, `GET /batch/{id}` reads
//! them back, each execution is an ordinary job, and a bad batch is refused whole.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use codebeaker::node::Role;
use common::{eventually, test_config, TestNode};
use serde_json::{json, Value};

fn python(code: &str) -> Value {
    json!({"language": "python", "code": code})
}

async fn batch(node: &TestNode, id: &str) -> Value {
    let (status, body) = node.get(&format!("/batch/{id}")).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_batch_answers_at_once_and_reads_back_in_order() {
    let node = TestNode::start(2).await;
    let request = json!({"executions": [
        python("print('a')"),
        {"language": "python", "code": "print(input())", "stdin": "b", "priority": "high"},
        {"language": "bash", "code": "echo c; exit 3", "priority": "low"},
    ]});
    let (status, accepted) = node.post_to("/batch", request).await;
    assert_eq!(status, 202, "{accepted}");
    let batch_id = accepted["batch_id"].as_str().unwrap().to_string();
    let ids: Vec<&str> = accepted["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "queued", "{e}");
            e["execution_id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3);
    let all_final = eventually(Duration::from_secs(30), || async {
        batch(&node, &batch_id).await["executions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["finished_at"].is_string())
    })
    .await;
    assert!(all_final, "{}", batch(&node, &batch_id).await);
    let read = batch(&node, &batch_id).await;
    assert_eq!(read["batch_id"], batch_id.as_str());
    let records = read["executions"].as_array().unwrap();
    let got: Vec<(&str, &str, i64)> = records
        .iter()
        .map(|r| {
            (
                r["execution_id"].as_str().unwrap(),
                r["stdout"].as_str().unwrap(),
                r["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(ids[0], "a\n", 0), (ids[1], "b\n", 0), (ids[2], "c\n", 3)]
    );
    // Each is an ordinary execution too.
    let (status, one) = node.get(&format!("/execution/{}", ids[1])).await;
    assert_eq!(status, 200);
    assert!(one.contains(r#""stdout":"b\n""#), "{one}");
}

#[tokio::test]
async fn a_waiting_batch_answers_with_every_final_record() {
    let node = TestNode::start(2).await;
    let request = json!({"wait": true, "executions": [
        python("print(6 * 7)"),
        {"language": "python", "code": "while True: pass", "timeout": 1},
        python("import sys; sys.exit(2)"),
    ]});
    let (status, body) = node.post_to("/batch", request).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<(&str, Option<i64>)> = body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["exit_code"].as_i64()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("completed", Some(0)),
            ("time_limit_exceeded", None),
            ("completed", Some(2)),
        ]
    );
    assert_eq!(body["executions"][0]["stdout"], "42\n");
    let read = batch(&node, body["batch_id"].as_str().unwrap()).await;
    assert_eq!(read["executions"], body["executions"]);
}

#[tokio::test]
async fn a_batch_spreads_over_the_nodes_of_the_cluster() {
    let first = TestNode::start(1).await;
    let mut config = test_config(1);
    config.nats.url = Some(first.nats_url());
    let second = TestNode::join(config, Role::Serve).await;
    let sleeper = python("import time; time.sleep(1.5); print('done')");
    let request = json!({"wait": true, "executions": vec![sleeper; 4]});
    let (status, body) = first.post_to("/batch", request).await;
    assert_eq!(status, 200, "{body}");
    let nodes: HashSet<&str> = body["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["stdout"], "done\n", "{r}");
            r["node"].as_str().unwrap()
        })
        .collect();
    let expected: HashSet<&str> = [first.node().node_id(), second.node().node_id()].into();
    assert_eq!(nodes, expected);
    second.shutdown().await;
}

#[tokio::test]
async fn a_bad_batch_is_refused_whole_and_nothing_of_it_runs() {
    let mut config = test_config(1);
    config.limits.max_batch = 3;
    let node = TestNode::with_config(config).await;
    let first_id = uuid::Uuid::new_v4().to_string();
    let one_bad = json!({"executions": [
        {"language": "python", "code": "print(1)", "execution_id": first_id},
        {"language": "python", "code": "print(2)", "timeout": 1e9},
    ]});
    let (status, body) = node.post_to("/batch", one_bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "limit_out_of_range");
    assert_eq!(body["error"]["field"], "timeout");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("executions[1]: "), "{message}");
    let (status, _) = node.get(&format!("/execution/{first_id}")).await;
    assert_eq!(
        status, 404,
        "the valid half of a refused batch must not run"
    );

    let too_many = json!({"executions": vec![python("print(1)"); 4]});
    let (status, body) = node.post_to("/batch", too_many).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "executions");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1 to 3 executions, not 4"));
    let (status, body) = node.post_to("/batch", json!({"executions": []})).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("executions"))
    );

    let twice = json!({"executions": [
        {"language": "python", "code": "print(1)", "execution_id": first_id},
        {"language": "python", "code": "print(2)", "execution_id": first_id},
    ]});
    let (status, body) = node.post_to("/batch", twice).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "execution_id");
    let (status, body) = node
        .post_to("/batch", json!({"executions": [python("1")], "extra": 1}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_json"))
    );

    let (status, body) = node.get(&format!("/batch/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = node.get("/batch/nope").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""field":"batch_id""#), "{body}");
}
