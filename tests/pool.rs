//! The warm pool: containers started ahead of their job, one job each, nothing carried over,
//! cold containers for jobs that do not fit, demand-driven size, removal when the node stops.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use codebeaker::config::PoolRange;
use common::{eventually, test_config, TestNode};
use serde_json::json;

async fn pooled_node(min: usize, max: usize, workers: usize, shrink_after_secs: u64) -> TestNode {
    let mut config = test_config(workers);
    config.pool.languages = [("python".to_string(), PoolRange { min, max })].into();
    config.pool.shrink_after_secs = shrink_after_secs;
    let node = TestNode::with_config(config).await;
    let ready = eventually(Duration::from_secs(15), || async {
        ready(&node).await >= min
    })
    .await;
    assert!(ready, "the pool did not fill");
    node
}

/// Containers ready in the python pool, as the metric says.
async fn ready(node: &TestNode) -> usize {
    let (_, metrics) = node.get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"codebeaker_container_pool_size{language="python"} "#))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The job prints the id of the container it runs in (from its cgroup path) on its first line.
const WHO_AM_I: &str = "import re\nprint(re.search(r'/docker/([0-9a-f]{64})', open('/proc/self/cgroup').read()).group(1))\n";

async fn container_of(node: &TestNode, extra: &str) -> (String, serde_json::Value) {
    let record = node.python(&format!("{WHO_AM_I}{extra}")).await;
    assert_eq!(record["status"], "completed", "{record}");
    let stdout = record["stdout"].as_str().unwrap().to_string();
    (stdout.lines().next().unwrap().to_string(), record)
}

#[tokio::test]
async fn a_pooled_container_serves_one_job_and_the_next_sees_nothing_of_it() {
    let node = pooled_node(1, 1, 1, 30).await;
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
    // The first job's container is gone.
    assert!(!node.containers().await.contains(&first));
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
    let node = pooled_node(1, 1, 1, 30).await;
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
    // Arguments are part of the container's command: also cold.
    let record = node
        .run(json!({"language": "python", "code": WHO_AM_I, "args": ["-x"]}))
        .await;
    let id = record["stdout"].as_str().unwrap().trim().to_string();
    assert!(!pooled.contains(&id));
}

#[tokio::test]
async fn a_pool_found_empty_grows_towards_its_max_and_a_quiet_spell_shrinks_it_back() {
    let node = pooled_node(1, 3, 4, 2).await;
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
    let node = pooled_node(2, 2, 1, 30).await;
    let node_id = node.node().node_id().to_string();
    assert_eq!(common::containers_of(&node_id).len(), 2);
    node.shutdown().await;
    assert_eq!(common::containers_of(&node_id), Vec::<String>::new());
}
