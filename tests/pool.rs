//! The warm pool: cells started ahead of their job; with the `container` backend one job
//! each; cold cells for jobs of another shape, demand-driven size, removal when the node stops.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use codebeaker::config::Backend;
use common::{container_of, eventually, pooled_node, ready, WHO_AM_I};
use serde_json::json;

#[tokio::test]
async fn with_the_container_backend_a_pooled_cell_serves_one_job() {
    let node = pooled_node(Backend::Container, 1, 1, 1, 30).await;
    let before: HashSet<String> = node.pooled().await;
    let (first, _) = container_of(
        &node,
        "open('/work/marker', 'w').write('x'); open('/tmp/marker', 'w').write('x')",
    )
    .await;
    assert!(
        before.contains(&first),
        "the job ran in the container that waited in the pool"
    );
    let refilled = eventually(Duration::from_secs(10), || async {
        ready(&node).await == 1
    })
    .await;
    assert!(refilled, "the pool did not refill");
    let before_second = node.pooled().await;
    let (second, record) = container_of(
        &node,
        "import os; print(os.path.exists('/work/marker'), os.path.exists('/tmp/marker'))",
    )
    .await;
    assert_ne!(first, second, "a container never serves two jobs");
    assert!(
        before_second.contains(&second),
        "the second job was pooled too"
    );
    assert!(
        record["stdout"]
            .as_str()
            .unwrap()
            .ends_with("False False\n"),
        "{record}"
    );
    // The first job's container is gone (removed in the background: under load, a moment
    // after the second job's answer).
    assert!(
        eventually(Duration::from_secs(5), || async {
            common::containers_of(node.node().node_id())
                .iter()
                .all(|id| !first.starts_with(id.as_str()))
        })
        .await
    );
}

#[tokio::test]
async fn a_job_needing_other_container_settings_gets_a_cold_container() {
    let node = pooled_node(Backend::Cell, 1, 1, 1, 30).await;
    let pooled = node.pooled().await;
    let record = node
        .run(json!({"language": "python", "code": WHO_AM_I, "memory_limit": "128m"}))
        .await;
    assert_eq!(record["status"], "completed", "{record}");
    let id = record["stdout"].as_str().unwrap().trim().to_string();
    assert!(
        !pooled.contains(&id),
        "a job with its own memory limit got a pooled container"
    );
    assert_eq!(node.pooled().await, pooled, "the pool was left as it was");
    // Arguments are the executor's to pass, per job: the pooled cell serves them.
    let record = node
        .run(json!({"language": "python", "code": WHO_AM_I, "args": ["-x"]}))
        .await;
    let id = record["stdout"].as_str().unwrap().trim().to_string();
    assert!(pooled.contains(&id), "{record}");
}

#[tokio::test]
async fn a_pool_found_empty_grows_towards_its_max_and_a_quiet_spell_shrinks_it_back() {
    let node = pooled_node(Backend::Container, 1, 3, 4, 2).await;
    for _ in 0..3 {
        let node = &node;
        let runs = (0..4).map(|i| async move { node.python(&format!("print({i})")).await });
        for record in futures::future::join_all(runs).await {
            assert_eq!(record["status"], "completed");
        }
    }
    let grown = eventually(Duration::from_secs(15), || async {
        ready(&node).await == 3
    })
    .await;
    assert!(grown, "pool size {}", ready(&node).await);
    assert_eq!(node.pooled().await.len(), 3);
    // Two quiet seconds per step: 3 → 2 → 1, and never below min.
    let shrunk = eventually(Duration::from_secs(15), || async {
        ready(&node).await == 1
    })
    .await;
    assert!(shrunk, "pool size {}", ready(&node).await);
    let settled = eventually(Duration::from_secs(5), || async {
        node.pooled().await.len() == 1
    })
    .await;
    assert!(settled);
}

#[tokio::test]
async fn a_node_that_stops_removes_its_pool() {
    let node = pooled_node(Backend::Cell, 2, 2, 1, 30).await;
    let node_id = node.node().node_id().to_string();
    assert_eq!(common::containers_of(&node_id).len(), 2);
    node.shutdown().await;
    assert_eq!(common::containers_of(&node_id), Vec::<String>::new());
}
