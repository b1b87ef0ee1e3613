//! The Supervisor replaces children that die, and what a dead worker was running is cleaned up.

mod common;

use std::time::Duration;

use common::{eventually, TestNode};
use serde_json::json;

#[tokio::test]
async fn a_killed_worker_is_replaced_and_the_replacement_serves_the_next_job() {
    let node = TestNode::start(1).await;
    let before = node.node.status().await.unwrap();
    assert_eq!(before.workers.len(), 1);
    let victim = before.workers[0].clone();
    victim.kill();

    let replaced = eventually(Duration::from_secs(10), || async {
        let s = node.node.status().await.unwrap();
        s.restarts == 1 && s.workers.len() == 1 && s.workers[0].get_id() != victim.get_id()
    })
    .await;
    assert!(replaced, "no replacement worker appeared");

    let r = node.python("print('served by the replacement')").await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["stdout"], "served by the replacement\n");
    let (_, metrics) = node.get("/metrics").await;
    assert!(
        metrics.contains(r#"codebeaker_actor_restarts_total{actor="worker"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_worker_killed_mid_job_answers_internal_error_and_its_container_goes() {
    let node = TestNode::start(1).await;
    let pending = node.spawn_post(
        json!({"language": "python", "code": "import time; time.sleep(60)", "timeout": 60}),
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    node.node.status().await.unwrap().workers[0].kill();

    let record = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record["status"], "internal_error");
    assert!(
        record["error"].as_str().unwrap().contains("worker"),
        "{record}"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.is_empty()
        })
        .await
    );
    let next = node.python("print(2)").await;
    assert_eq!(next["status"], "completed");
}
