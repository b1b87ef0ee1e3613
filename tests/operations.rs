//! Cluster operations: autoscaling, priorities under a backlog, the cluster view, and graceful
//! drain (finishing in time, or handing jobs back at once).

mod common;

use std::time::{Duration, Instant};

use codebeaker::node::{Node, Role};
use common::{
    eventually, final_record, test_config, until_running, NatsServer, NodeProcess, TestNode,
};
use serde_json::{json, Value};

async fn submit(node: &TestNode, request: Value) -> String {
    let (status, body) = node.post_to("/execute/async", request).await;
    assert_eq!(status, 202, "{body}");
    body["execution_id"].as_str().unwrap().to_string()
}

async fn workers(node: &TestNode) -> usize {
    node.node()
        .status()
        .await
        .expect("supervisor answers")
        .workers
        .len()
}

async fn metric(node: &TestNode, series: &str) -> f64 {
    let (_, text) = node.get("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_burst_grows_the_pool_to_max_and_idleness_shrinks_it_back_to_min() {
    let mut config = test_config(1);
    config.supervision.max_workers = Some(4);
    config.supervision.check_interval_ms = 200;
    config.supervision.scale_down_after_secs = 1;
    let node = TestNode::with_config(config).await;
    assert_eq!(workers(&node).await, 1);

    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(
            submit(
                &node,
                json!({"language": "python", "code": format!("print({i})")}),
            )
            .await,
        );
    }
    let grew = eventually(Duration::from_secs(30), || async {
        workers(&node).await == 4
    })
    .await;
    assert!(grew, "the pool did not grow to 4 under a backlog of 200");
    let done = eventually(Duration::from_secs(180), || async {
        metric(
            &node,
            r#"codebeaker_executions_total{language="python",status="completed"}"#,
        )
        .await
            == 200.0
    })
    .await;
    assert!(done, "200 jobs did not complete");
    assert!(workers(&node).await <= 4, "never above max");

    let shrank = eventually(Duration::from_secs(30), || async {
        workers(&node).await == 1
    })
    .await;
    assert!(shrank, "the idle pool did not shrink back to 1");
    assert!(metric(&node, r#"codebeaker_scaling_events_total{direction="up"}"#).await >= 1.0);
    assert!(
        metric(
            &node,
            r#"codebeaker_scaling_events_total{direction="down"}"#
        )
        .await
            >= 1.0
    );
    assert_eq!(
        metric(&node, r#"codebeaker_workers{state="idle"}"#).await,
        1.0
    );
    // Scaling down is not a failure: nothing was restarted.
    assert_eq!(
        metric(&node, r#"codebeaker_actor_restarts_total{actor="worker"}"#).await,
        0.0
    );
    // The node still serves after shrinking.
    assert_eq!(node.python("print('after')").await["stdout"], "after\n");
}

#[tokio::test]
async fn under_a_backlog_high_priority_jobs_run_before_the_waiting_low_ones() {
    let node = TestNode::start(1).await;
    // Occupy the only worker, so that what follows waits in the queue.
    let blocker = submit(
        &node,
        json!({"language": "python", "code": "import time; time.sleep(2)"}),
    )
    .await;
    assert!(until_running(&node, &blocker, Duration::from_secs(10)).await);
    let mut low = Vec::new();
    for i in 0..8 {
        let job = json!({"language": "python", "code": format!("print({i})"), "priority": "low"});
        low.push(submit(&node, job).await);
    }
    let mut high = Vec::new();
    for i in 0..3 {
        let job = json!({"language": "python", "code": format!("print({i})"), "priority": "high"});
        high.push(submit(&node, job).await);
    }
    let times = |ids: Vec<String>| async {
        let mut out = Vec::new();
        for id in ids {
            let record = final_record(&node, &id, Duration::from_secs(60)).await;
            assert_eq!(record["status"], "completed");
            let at = |field: &str| {
                chrono::DateTime::parse_from_rfc3339(record[field].as_str().unwrap()).unwrap()
            };
            out.push((at("started_at"), at("finished_at")));
        }
        out
    };
    let (high, low) = (times(high).await, times(low).await);
    let last_high_finished = high.iter().map(|(_, f)| *f).max().unwrap();
    let first_low_started = low.iter().map(|(s, _)| *s).min().unwrap();
    assert!(
        last_high_finished <= first_low_started,
        "a low job started at {first_low_started} before the last high one finished at {last_high_finished}"
    );
}

fn listed(nodes: &Value) -> Vec<String> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_cluster_view_lists_live_nodes_and_drops_a_killed_one_within_a_few_heartbeats() {
    let nats = NatsServer::start();
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let worker = NodeProcess::start("worker", &nats.url, 2).await;
    let mut doomed = NodeProcess::start("worker", &nats.url, 1).await;
    let mut expected = vec![
        api.node_id.clone(),
        worker.node_id.clone(),
        doomed.node_id.clone(),
    ];
    expected.sort();
    let all_listed = eventually(Duration::from_secs(10), || async {
        listed(&api.get("/workers").await) == expected
    })
    .await;
    assert!(all_listed, "{}", api.get("/workers").await);
    let nodes = api.get("/workers").await;
    let entry = |id: &str| {
        nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()
            .clone()
    };
    let w = entry(&worker.node_id);
    assert_eq!(
        (
            w["role"].as_str(),
            w["workers"].as_u64(),
            w["busy"].as_u64()
        ),
        (Some("worker"), Some(2), Some(0))
    );
    assert_eq!(w["ready"], true);
    assert_eq!(w["version"], env!("CARGO_PKG_VERSION"));
    assert!(w["languages"]
        .as_array()
        .unwrap()
        .contains(&json!("python")));
    assert!(w["last_heartbeat"].as_str().is_some());
    let a = entry(&api.node_id);
    assert_eq!(
        (a["role"].as_str(), a["workers"].as_u64()),
        (Some("api"), Some(0))
    );
    assert_eq!(a["languages"], json!([]));

    // The CLI prints the same nodes.
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .args(["cluster", "--url", &api.url])
        .output()
        .unwrap();
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).unwrap();
    for id in &expected {
        assert!(text.contains(id.as_str()), "{text}");
    }

    // Killed without a word: it drops out once its heartbeats stop (three missed: 15 s).
    doomed.kill();
    let started = Instant::now();
    let dropped = eventually(Duration::from_secs(25), || async {
        !listed(&api.get("/workers").await).contains(&doomed.node_id)
    })
    .await;
    assert!(dropped, "a killed node was still listed after 25 s");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "dropped before it could be stale"
    );
    assert!(listed(&api.get("/workers").await).contains(&worker.node_id));
}

#[tokio::test]
async fn sigterm_during_five_running_jobs_lets_them_all_finish_and_exits_zero() {
    let nats = NatsServer::start();
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let mut worker = NodeProcess::start("worker", &nats.url, 5).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let code = format!("import time; time.sleep(3); print('done {i}')");
        ids.push(
            api.submit(json!({"language": "python", "code": code, "timeout": 10}))
                .await,
        );
    }
    let all_running = eventually(Duration::from_secs(15), || async {
        worker.get("/health").await["busy"] == 5
    })
    .await;
    assert!(all_running);

    let status = worker.terminate();
    assert_eq!(status.code(), Some(0), "a drained node exits 0");
    for (i, id) in ids.iter().enumerate() {
        let record = api.get(&format!("/execution/{id}")).await;
        assert_eq!(record["status"], "completed", "{record}");
        assert_eq!(record["stdout"], format!("done {i}\n"));
        assert_eq!(record["node"], worker.node_id.as_str());
    }
    // It took its heartbeat with it: gone from the cluster view at once.
    assert!(!listed(&api.get("/workers").await).contains(&worker.node_id));
    let log = worker.log_lines();
    assert!(log.iter().any(|l| l["fields"]["message"] == "stopped"));
}

#[tokio::test]
async fn a_job_that_cannot_finish_within_the_drain_timeout_is_handed_to_another_node_at_once() {
    let nats = NatsServer::start();
    // A long ack_wait: the job must come back by the NAK, not by waiting that out.
    let settings = [
        ("CODEBEAKER_DRAIN_TIMEOUT_SECS", "1"),
        ("CODEBEAKER_NATS__ACK_WAIT_SECS", "120"),
    ];
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let mut leaving = NodeProcess::start_with_env("worker", &nats.url, 1, &settings).await;
    let code = "import time; time.sleep(4); print('finished')";
    let id = api
        .submit(json!({"language": "python", "code": code, "timeout": 10}))
        .await;
    let running = eventually(Duration::from_secs(15), || async {
        api.get(&format!("/execution/{id}")).await["status"] == "running"
    })
    .await;
    assert!(running);
    let staying = NodeProcess::start_with_env("worker", &nats.url, 1, &settings).await;

    let sigterm = Instant::now();
    assert_eq!(leaving.terminate().code(), Some(0));
    let done = eventually(Duration::from_secs(30), || async {
        api.get(&format!("/execution/{id}")).await["status"] == "completed"
    })
    .await;
    assert!(done, "{}", api.get(&format!("/execution/{id}")).await);
    assert!(
        sigterm.elapsed() < Duration::from_secs(30),
        "well before ack_wait (120 s)"
    );
    let record = api.get(&format!("/execution/{id}")).await;
    assert_eq!(record["node"], staying.node_id.as_str());
    assert_eq!(record["stdout"], "finished\n");
    let log = leaving.log_lines();
    assert!(log
        .iter()
        .any(|l| l["fields"]["message"] == "job handed back: this node is leaving"));
    // Nothing of the leaving node is left behind.
    assert_eq!(
        common::containers_of(&leaving.node_id),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_cancel_during_a_drain_still_reaches_the_running_job() {
    let nats = NatsServer::start();
    let on_nats = |workers| {
        let mut config = test_config(workers);
        config.nats.url = Some(nats.url.clone());
        config
    };
    let api = TestNode::join(on_nats(0), Role::Api).await;
    let mut config = on_nats(1);
    config.drain_timeout_secs = 60;
    let worker = TestNode::join(config, Role::Worker).await;
    let code = "import time; time.sleep(50)";
    let id = submit(
        &api,
        json!({"language": "python", "code": code, "timeout": 55}),
    )
    .await;
    assert!(until_running(&api, &id, Duration::from_secs(15)).await);

    // The worker node drains: its job may run for up to a minute more...
    let started = Instant::now();
    let leaving = tokio::spawn(worker.shutdown());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ...unless it is cancelled, which must still reach it.
    let (status, record) = api.delete(&format!("/execution/{id}")).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "cancelled", "{record}");
    tokio::time::timeout(Duration::from_secs(30), leaving)
        .await
        .expect("the drain ended with the cancelled job")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(40));
    api.shutdown().await;
}

#[tokio::test]
async fn a_node_whose_start_fails_half_way_stops_what_it_started() {
    let data = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = test_config(1);
    config.nats.url = None;
    config.nats.embedded_port = common::free_port();
    config.nats.data_dir = data.path().to_path_buf();
    config.pool.min = 1;
    config.pool.max = 1;
    config.judge0.listen = Some(taken.local_addr().unwrap());

    // The Judge0 port is taken: the start fails after its nats-server and Docker were up...
    let failed = Node::start(config.clone(), Role::Serve).await;
    let error = failed
        .err()
        .expect("a taken port stops the start")
        .to_string();
    assert!(
        error.contains(&taken.local_addr().unwrap().to_string()),
        "{error}"
    );
    // ...and left nothing behind: no nats-server on the port, no containers, no actors
    // holding the node's names, so the same node starts at once once the port is free.
    assert!(std::net::TcpStream::connect(("127.0.0.1", config.nats.embedded_port)).is_err());
    assert_eq!(common::containers_of(&config.node_id), Vec::<String>::new());
    config.judge0.listen = None;
    let node_id = config.node_id.clone();
    let node = Node::start(config, Role::Serve)
        .await
        .expect("the same node starts once the port is free");
    // Stopped at once, while every language's pool is still warming its first cell: the
    // node waits for those warm-ups and removes what they made.
    node.shutdown().await;
    assert_eq!(common::containers_of(&node_id), Vec::<String>::new());
}

/// A language whose image is not built yet: the node starts and serves the others, refuses
/// that one with a 503 that says what to do (REST and NATS alike, and a batch holding it
/// queues nothing), and serves it within seconds once the image appears.
#[tokio::test]
async fn a_language_is_refused_until_its_image_is_built_then_served() {
    let data = tempfile::tempdir().unwrap();
    let image = format!(
        "codebeaker/test-late-{}:latest",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let languages = data.path().join("languages.toml");
    let defined = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/languages.toml"))
        .unwrap()
        .replace("codebeaker/lua:latest", &image);
    std::fs::write(&languages, defined).unwrap();
    let mut config = test_config(1);
    config.languages_file = Some(languages);
    let node = TestNode::with_config(config).await;

    let (status, body) = node
        .post(json!({"language": "lua", "code": "print(1)"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "language_unavailable", "{body}");
    assert_eq!(body["error"]["field"], "language");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&image) && message.contains("scripts/setup.sh --languages lua"),
        "{message}"
    );
    let (status, body) = node
        .post_to(
            "/batch",
            json!({"executions": [
                {"language": "python", "code": "print(1)"},
                {"language": "lua", "code": "print(1)"}
            ]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("executions[1]: "),
        "{body}"
    );
    let nats = async_nats::connect(node.nats_url()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let request = json!({"language": "lua", "code": "print(1)"}).to_string();
    let reply = nats
        .request_with_headers("codebeaker.execute", headers, request.into())
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(answer["error"]["code"], "language_unavailable", "{answer}");
    let python = node
        .run(json!({"language": "python", "code": "print(1)"}))
        .await;
    assert_eq!(
        python["stdout"], "1\n",
        "the other languages are served: {python}"
    );
    let (_, recent) = node.get("/executions").await;
    let recent: Value = serde_json::from_str(&recent).unwrap();
    assert_eq!(
        recent.as_array().unwrap().len(),
        1,
        "only the python job was queued: {recent}"
    );

    // The image is built (here: tagged from the real lua image): served within seconds.
    let tagged = std::process::Command::new("docker")
        .args(["tag", "codebeaker/lua:latest", &image])
        .status()
        .unwrap();
    assert!(tagged.success());
    let served = common::eventually(Duration::from_secs(30), || async {
        node.post(json!({"language": "lua", "code": "print(1)"}))
            .await
            .0
            == 200
    })
    .await;
    let r = node
        .run(json!({"language": "lua", "code": "print(6 * 7)"}))
        .await;
    std::process::Command::new("docker")
        .args(["rmi", &image])
        .status()
        .unwrap();
    assert!(served, "the language is served once its image is there");
    assert_eq!(r["stdout"], "42\n", "{r}");
}
