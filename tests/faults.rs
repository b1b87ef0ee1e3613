//! Faults that touch the whole machine: a hung Docker engine, a restarted one, and a cluster
//! losing a NATS server and a worker node mid-run. They stop or restart the shared dockerd (or
//! load every core), so they are `#[ignore]`d in the main run and the test command runs them
//! on their own, one at a time, after it: `cargo nextest run --test faults --run-ignored only
//! --test-threads 1`.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, final_record, test_config, NatsServer, NodeProcess, TestNode};
use serde_json::{json, Value};

fn dockerd_pid() -> String {
    let out = Command::new("pidof").arg("dockerd").output().unwrap();
    let pid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!pid.is_empty(), "dockerd runs (scripts/setup.sh starts it)");
    pid
}

fn signal(sig: &str, pid: &str) {
    let sent = Command::new("kill").args([sig, pid]).status().unwrap();
    assert!(sent.success(), "kill {sig} {pid}");
}

/// dockerd frozen with SIGSTOP: every Docker call hangs. Thawed when dropped, whatever happens.
struct FrozenDocker(String);

impl FrozenDocker {
    fn freeze() -> FrozenDocker {
        let pid = dockerd_pid();
        signal("-STOP", &pid);
        FrozenDocker(pid)
    }
}

impl Drop for FrozenDocker {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

/// Starts dockerd again (as setup does) if it is not answering, also when a test fails.
struct RestartDockerOnDrop;

impl Drop for RestartDockerOnDrop {
    fn drop(&mut self) {
        let answering = Command::new("docker").arg("version").output();
        if !answering.is_ok_and(|o| o.status.success()) {
            let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup.sh");
            let status = Command::new(setup).status().unwrap();
            assert!(status.success(), "setup restarted dockerd");
        }
    }
}

async fn submit(node: &TestNode, request: Value) -> String {
    let (status, body) = node.post_to("/execute/async", request).await;
    assert_eq!(status, 202, "{body}");
    body["execution_id"].as_str().unwrap().to_string()
}

#[tokio::test]
#[ignore = "disrupts dockerd; run alone (see the module doc)"]
async fn a_worker_stuck_on_a_hung_docker_is_replaced_and_its_job_still_ends() {
    let mut config = test_config(1);
    config.supervision.stuck_grace_secs = 1;
    config.supervision.check_interval_ms = 200;
    let node = TestNode::with_config(config).await;
    let id = submit(
        &node,
        json!({"language": "python", "code": "import time; time.sleep(30)", "timeout": 3}),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );

    {
        // The worker's kill at the job's deadline (3 s) now hangs: it is stuck.
        let _frozen = FrozenDocker::freeze();
        // Replaced: one restart, and one worker again (the replacement), idle.
        let replaced = eventually(Duration::from_secs(15), || async {
            node.node()
                .status()
                .await
                .is_some_and(|s| s.restarts == 1 && s.workers.len() == 1 && s.busy == 0)
        })
        .await;
        assert!(replaced, "the stuck worker was not replaced");
    }
    // Docker thawed: the job comes back (ack_wait) and ends by its own limit on the
    // replacement; the stuck attempt's container is removed.
    let record = final_record(&node, &id, Duration::from_secs(60)).await;
    assert_eq!(record["status"], "time_limit_exceeded", "{record}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            node.containers().await.is_empty()
        })
        .await
    );
    let (_, metrics) = node.get("/metrics").await;
    assert!(
        metrics.contains(r#"codebeaker_actor_restarts_total{actor="worker"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
#[ignore = "disrupts dockerd; run alone (see the module doc)"]
async fn without_docker_a_node_is_not_ready_and_takes_no_jobs_until_docker_is_back() {
    let mut config = test_config(1);
    config.supervision.check_interval_ms = 200;
    let node = TestNode::with_config(config).await;
    let (status, _) = node.get("/ready").await;
    assert_eq!(status, 200);

    let _restart = RestartDockerOnDrop;
    let pid = dockerd_pid();
    signal("-TERM", &pid);
    let gone = eventually(Duration::from_secs(60), || async {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    assert!(gone, "dockerd did not stop");
    let not_ready = eventually(Duration::from_secs(10), || async {
        let (status, body) = node.get("/ready").await;
        status == 503 && body.contains(r#""code":"not_ready""#) && body.contains("Docker")
    })
    .await;
    assert!(not_ready, "{:?}", node.get("/ready").await);

    // A job submitted now waits in the queue rather than failing.
    let id = submit(
        &node,
        json!({"language": "python", "code": "print('after the restart')"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, body) = node.get(&format!("/execution/{id}")).await;
    assert!(body.contains(r#""status":"queued""#), "{body}");

    drop(_restart);
    let ready = eventually(Duration::from_secs(30), || async {
        node.get("/ready").await.0 == 200
    })
    .await;
    assert!(ready, "the node did not become ready again");
    let record = final_record(&node, &id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "after the restart\n");
}

/// Submits with a client-chosen execution id, retrying while the cluster elects leaders: the
/// id makes a retry safe (the job never runs twice).
async fn submit_until_accepted(api: &NodeProcess, i: usize) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let request = json!({"language": "python", "code": format!("print({i})"), "execution_id": id});
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sent = http
            .post(format!("{}/execute/async", api.url))
            .json(&request)
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == 202) {
            return id;
        }
        assert!(Instant::now() < deadline, "job {i} was never accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "disrupts dockerd; run alone (see the module doc)"]
async fn a_cluster_losing_a_nats_server_and_a_worker_node_mid_run_ends_every_job_exactly_once() {
    let mut nats = NatsServer::cluster(3);
    let urls = nats
        .iter()
        .map(|n| n.url.clone())
        .collect::<Vec<_>>()
        .join(",");
    let settings = [("CODEBEAKER_NATS__REPLICAS", "3")];
    let api = NodeProcess::start_with_env("api", &urls, 0, &settings).await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(NodeProcess::start_with_env("worker", &urls, 2, &settings).await);
    }

    let mut ids = Vec::new();
    for i in 0..300 {
        if i == 100 {
            nats[0].stop();
            workers[0].kill();
        }
        ids.push(submit_until_accepted(&api, i).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let record = match api.wait_final(id, Duration::from_secs(120)).await {
            Ok(record) => record,
            Err(record) => panic!(
                "job {i} never ended: {record}\nwhat the nodes logged about it or about rescues:\n{}",
                workers
                    .iter()
                    .flat_map(|w| w.log_lines())
                    .filter(|l| l.to_string().contains(id.as_str()) || l["target"] == "codebeaker::queue::rescue")
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        };
        assert_eq!(record["status"], "completed", "{record}");
        assert_eq!(record["stdout"], format!("{i}\n"));
    }
    // Exactly one final record each: across all worker logs (the killed node's too), each job
    // was finished and stored once, however often it was delivered.
    let mut finished: HashMap<String, usize> = HashMap::new();
    let mut rescued = 0;
    for worker in &workers {
        for line in worker.log_lines() {
            let message = line["fields"]["message"].as_str().unwrap_or_default();
            rescued += usize::from(message.starts_with("job published again"));
            if message == "job finished" {
                let id = line["span"]["execution_id"].as_str().unwrap().to_string();
                *finished.entry(id).or_default() += 1;
            }
        }
    }
    // How often the stream lost a delivered job (nats-server 2.9's bug) and a node rescued it.
    eprintln!("jobs published again by a rescue: {rescued}");
    for id in &ids {
        assert_eq!(
            finished.get(id),
            Some(&1),
            "job {id} finished {:?} times",
            finished.get(id)
        );
    }
    assert_eq!(finished.len(), ids.len());
}

#[tokio::test]
#[ignore = "disrupts dockerd; run alone (see the module doc)"]
async fn a_frozen_docker_during_a_respawn_stops_neither_the_heartbeat_nor_leaves_the_job_to_others()
{
    use codebeaker::actors::runtime::RuntimeMsg;
    use codebeaker::actors::{lookup, names};
    use codebeaker::node::Role;
    let nats = NatsServer::start();
    let on_nats = |workers| {
        let mut config = test_config(workers);
        config.nats.url = Some(nats.url.clone());
        config.supervision.check_interval_ms = 200;
        config
    };
    let node = TestNode::join(on_nats(1), Role::Serve).await;
    let code = "import time; time.sleep(25); print('slept')";
    let id = submit(
        &node,
        json!({"language": "python", "code": code, "timeout": 60}),
    )
    .await;
    assert!(common::until_running(&node, &id, Duration::from_secs(15)).await);
    // Another worker node, which would take the job over if this node looked dead.
    let other = TestNode::join(on_nats(1), Role::Worker).await;

    let frozen = FrozenDocker::freeze();
    // A child dies while Docker hangs: the Supervisor replaces it, and must not wait on Docker.
    let runtime = lookup::<RuntimeMsg>(&names::runtime(node.node().node_id(), "python")).unwrap();
    runtime.kill();
    let not_ready = eventually(Duration::from_secs(10), || async {
        let (status, body) = node.get("/ready").await;
        status == 503 && body.contains("Docker")
    })
    .await;
    assert!(not_ready, "{:?}", node.get("/ready").await);
    // Past the time after which a silent node counts as gone (15 s)...
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (_, nodes) = node.get("/workers").await;
    let nodes: Value = serde_json::from_str(&nodes).unwrap();
    let me = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == node.node().node_id())
        .unwrap_or_else(|| panic!("the frozen node's heartbeat stopped: {nodes}"));
    let age = chrono::Utc::now()
        - me["last_heartbeat"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap();
    assert!(age < chrono::Duration::seconds(11), "heartbeat {age} old");
    assert_eq!(me["ready"], false, "{me}");
    let (_, record) = node.get(&format!("/execution/{id}")).await;
    let record: Value = serde_json::from_str(&record).unwrap();
    assert_eq!(
        record["node"],
        node.node().node_id(),
        "taken over: {record}"
    );
    drop(frozen);

    // Docker is back: the job ends where it ran, once.
    let record = final_record(&node, &id, Duration::from_secs(60)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["node"], node.node().node_id(), "{record}");
    assert_eq!(record["stdout"], "slept\n");
    let ready = eventually(Duration::from_secs(20), || async {
        node.get("/ready").await.0 == 200
    })
    .await;
    assert!(ready, "the node did not become ready again");
    other.shutdown().await;
    node.shutdown().await;
}
