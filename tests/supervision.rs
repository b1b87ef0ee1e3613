//! The Supervisor replaces children that die, and what a dead worker was running is cleaned up.

mod common;

use std::time::Duration;

use common::{eventually, final_record, TestNode};
use serde_json::json;

#[tokio::test]
async fn a_killed_worker_is_replaced_and_the_replacement_serves_the_next_job() {
    let node = TestNode::start(1).await;
    let before = node.node().status().await.unwrap();
    assert_eq!(before.workers.len(), 1);
    let victim = before.workers[0].clone();
    victim.kill();

    let replaced = eventually(Duration::from_secs(10), || async {
        let s = node.node().status().await.unwrap();
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
async fn a_job_whose_worker_is_killed_is_redelivered_and_completes() {
    let node = TestNode::start(1).await;
    let (status, accepted) = node
        .post_to(
            "/execute/async",
            json!({"language": "python", "code": "import time; time.sleep(1); print('done')", "timeout": 10}),
        )
        .await;
    assert_eq!(status, 202);
    let id = accepted["execution_id"].as_str().unwrap().to_string();
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    node.node().status().await.unwrap().workers[0].kill();
    // The dead worker's container goes at once; the job comes back after ack_wait (3 s here).
    assert!(
        eventually(Duration::from_secs(2), || async {
            node.containers().await.is_empty()
        })
        .await
    );

    let record = final_record(&node, &id, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "done\n");
    assert_eq!(node.node().status().await.unwrap().restarts, 1);
}
