//! Nodes in separate processes sharing one nats-server: roles, crash redelivery, and
//! request/reply from another process.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use codebeaker::node::Role;
use codebeaker::sandbox::Sandbox;
use common::{eventually, final_record, NatsServer, NodeProcess, TestNode};
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn an_api_only_and_a_worker_only_process_serve_jobs_together() {
    let nats = NatsServer::start();
    let worker = NodeProcess::start("worker", &nats.url, 2).await;
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let record = api
        .execute(json!({"language": "python", "code": "print('split')"}))
        .await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "split\n");
    assert_eq!(record["node"], worker.node_id.as_str());
    // The worker serves health and metrics, not the execution API.
    let on_worker = reqwest::get(format!("{}/languages", worker.url))
        .await
        .unwrap();
    assert_eq!(on_worker.status(), 404);
}

#[tokio::test]
async fn a_job_whose_worker_process_is_killed_completes_on_another_node() {
    let nats = NatsServer::start();
    let api = TestNode::on(&nats, Role::Api, 0).await;
    let mut first = NodeProcess::start("worker", &nats.url, 1).await;
    let (status, accepted) = api
        .post_to(
            "/execute/async",
            json!({"language": "python", "code": "import time; time.sleep(2); print('survived')", "timeout": 10}),
        )
        .await;
    assert_eq!(status, 202);
    let id = accepted["execution_id"].as_str().unwrap().to_string();
    let running_on_first = eventually(Duration::from_secs(10), || async {
        let (_, body) = api.get(&format!("/execution/{id}")).await;
        let record: serde_json::Value = serde_json::from_str(&body).unwrap();
        record["status"] == "running" && record["node"] == first.node_id.as_str()
    })
    .await;
    assert!(running_on_first);
    first.kill();

    let second = NodeProcess::start("worker", &nats.url, 1).await;
    let record = final_record(&api, &id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "survived\n");
    assert_eq!(record["node"], second.node_id.as_str());

    // The killed process could not tidy up; remove what it left.
    let sandbox = Sandbox::connect(&first.node_id, &Default::default())
        .await
        .unwrap();
    sandbox.remove_node_containers().await.unwrap();
}

#[tokio::test]
async fn the_cli_runs_a_file_over_nats_request_reply_with_messagepack() {
    let node = TestNode::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.py");
    std::fs::write(
        &file,
        "import sys\nprint('hi', sys.stdin.read().strip())\nsys.exit(4)\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .arg("run")
        .arg(&file)
        .args(["--nats", &node.nats_url()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"there\n").await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi there\n");
    assert_eq!(output.status.code(), Some(4));
}

#[tokio::test]
async fn request_reply_answers_json_when_asked_and_errors_in_the_same_shape() {
    let node = TestNode::start(1).await;
    let client = async_nats::connect(node.nats_url()).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "application/json");
    let body = json!({"language": "python", "code": "print(2 + 2)"}).to_string();
    let reply = client
        .request_with_headers("codebeaker.execute", headers.clone(), body.into())
        .await
        .unwrap();
    let record: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(record["status"], "completed");
    assert_eq!(record["stdout"], "4\n");

    let bad = json!({"language": "brainfuck", "code": "x"}).to_string();
    let reply = client
        .request_with_headers("codebeaker.execute", headers, bad.into())
        .await
        .unwrap();
    let error: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(error["error"]["code"], "unknown_language");

    let reply = client
        .request("codebeaker.languages", "".into())
        .await
        .unwrap();
    let languages: Vec<codebeaker::languages::LanguageInfo> =
        rmp_serde::from_slice(&reply.payload).unwrap();
    assert_eq!(languages[0].name, "python");
}

#[tokio::test]
async fn serve_without_a_nats_url_runs_and_restarts_its_own_nats_server() {
    let data = tempfile::tempdir().unwrap();
    let nats_port = common::free_port();
    let http_port = common::free_port();
    let node_id = format!(
        "embedded-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{http_port}"),
            "--workers",
            "1",
        ])
        .env("CODEBEAKER_NODE_ID", &node_id)
        .env("CODEBEAKER_NATS__EMBEDDED_PORT", nats_port.to_string())
        .env("CODEBEAKER_NATS__DATA_DIR", data.path())
        .env_remove("CODEBEAKER_NATS__URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{http_port}");
    let run = || async {
        let response = reqwest::Client::new()
            .post(format!("{url}/execute"))
            .json(&json!({"language": "python", "code": "print('embedded')"}))
            .send()
            .await;
        match response {
            Ok(r) => r.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        }
    };
    let first = eventually(Duration::from_secs(30), || async {
        run().await.is_some_and(|r| r["status"] == "completed")
    })
    .await;
    assert!(first, "the node with embedded NATS did not serve a job");
    assert!(
        data.path().join("nats").exists(),
        "JetStream data lives under the data dir"
    );
    // Other local processes get nowhere without the credentials kept under the data dir...
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let refused = async_nats::connect(&nats_url).await.expect_err("refused");
    assert_eq!(
        refused.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );
    let kept = data.path().join("nats/credentials.toml");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the credentials file is the owner's alone"
    );
    // ...and the CLI, given the same data dir, finds them.
    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"))
        .args(["languages", "--nats", &nats_url])
        .env("CODEBEAKER_NATS__DATA_DIR", data.path())
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(listed.contains("python"), "{listed}");

    // Kill the nats-server child: the node restarts it, and jobs flow again.
    let pattern = format!("nats-server -js -a 127.0.0.1 -p {nats_port}");
    let killed = std::process::Command::new("pkill")
        .args(["-9", "-f", &pattern])
        .status()
        .unwrap();
    assert!(killed.success(), "the embedded nats-server was running");
    let again = eventually(Duration::from_secs(60), || async {
        run().await.is_some_and(|r| r["status"] == "completed")
    })
    .await;
    assert!(
        again,
        "no job served after the embedded nats-server was killed"
    );

    let _ = child.kill().await;
    common::remove_containers_of(&node_id);
    let _ = std::process::Command::new("pkill")
        .args(["-9", "-f", &pattern])
        .status();
}

/// Stands in for nats-server 2.9's lost redelivery (a consumer leader that dies with a message
/// delivered can forget it): with an ack_wait of an hour, only the rescue brings the job back.
#[tokio::test]
async fn a_job_held_by_a_dead_node_and_never_redelivered_is_rescued_by_another() {
    let nats = NatsServer::start();
    rescue_of_a_dead_nodes_job(&nats, |_| vec![], async_nats::ConnectOptions::new()).await;
}

/// The same rescue on a server with the shipped `nats/accounts.conf`: each node has only its
/// role's rights, and the server logs no permission violation.
#[tokio::test]
async fn rescue_works_under_the_shipped_accounts() {
    let nats = NatsServer::with_shipped_accounts();
    let credentials = |role: &str| {
        let user = if role == "api" { "api" } else { "worker" };
        vec![
            ("CODEBEAKER_NATS__USER", user.to_string()),
            ("CODEBEAKER_NATS__PASSWORD", format!("change-me-{user}")),
        ]
    };
    let observer = async_nats::ConnectOptions::with_user_and_password(
        "worker".into(),
        "change-me-worker".into(),
    );
    rescue_of_a_dead_nodes_job(&nats, credentials, observer).await;
    let log = nats.log();
    let violations: Vec<&str> = log.lines().filter(|l| l.contains("Violation")).collect();
    assert!(violations.is_empty(), "{violations:#?}");
}

/// A worker node dies while running a job, and (with an ack_wait of an hour) the stream would
/// not deliver it again for ages: another worker node rescues it, and it completes there.
async fn rescue_of_a_dead_nodes_job(
    nats: &NatsServer,
    credentials: impl Fn(&str) -> Vec<(&'static str, String)>,
    observer: async_nats::ConnectOptions,
) {
    let start = |role: &'static str, workers| {
        // Every node, since the first to start creates the consumers.
        let mut env = credentials(role);
        env.push(("CODEBEAKER_NATS__ACK_WAIT_SECS", "3600".into()));
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            NodeProcess::start_with_env(role, &nats.url, workers, &env).await
        }
    };
    let api = start("api", 0).await;
    let mut first = start("worker", 1).await;
    let id = api
        .submit(json!({"language": "python", "code": "import time; time.sleep(2); print('rescued')", "timeout": 10}))
        .await;
    let running_on_first = eventually(Duration::from_secs(10), || async {
        let record = api.get(&format!("/execution/{id}")).await;
        record["status"] == "running" && record["node"] == first.node_id.as_str()
    })
    .await;
    assert!(running_on_first);
    first.kill();

    let second = start("worker", 1).await;
    let record = api.final_record(&id, Duration::from_secs(60)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "rescued\n");
    assert_eq!(record["node"], second.node_id.as_str());
    let rescues: Vec<_> = second
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["fields"]["message"]
                == "job published again: nobody held it and the stream would not deliver it"
        })
        .collect();
    assert_eq!(rescues.len(), 1, "one rescue logged");
    assert_eq!(rescues[0]["fields"]["execution_id"], id.as_str());
    assert_eq!(rescues[0]["fields"]["node"], first.node_id.as_str());
    // The original message was deleted and the copy acked: nothing is left to deliver.
    let observer = observer.connect(&nats.url).await.unwrap();
    assert!(
        stream_empties(observer).await,
        "job messages left in the stream"
    );
}

/// A second message for a job a live node is running (a rescue's copy, a retried publish) must
/// not start it again.
#[tokio::test]
async fn a_copy_of_a_job_that_a_live_node_runs_is_left_to_that_node() {
    let nats = NatsServer::start();
    let api = NodeProcess::start("api", &nats.url, 0).await;
    let a = NodeProcess::start("worker", &nats.url, 1).await;
    let b = NodeProcess::start("worker", &nats.url, 1).await;
    let id = api
        .submit(json!({"language": "python", "code": "import time; time.sleep(8); print('once')", "timeout": 15}))
        .await;
    let running = eventually(Duration::from_secs(10), || async {
        api.get(&format!("/execution/{id}")).await["status"] == "running"
    })
    .await;
    assert!(running);
    let holder = api.get(&format!("/execution/{id}")).await["node"].clone();
    let (holder, other) = if holder == a.node_id.as_str() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Once the holder's heartbeat lists the job, any node can tell the copy from a lost job.
    let listed = eventually(Duration::from_secs(10), || async {
        let nodes = api.get("/workers").await;
        nodes.as_array().unwrap().iter().any(|n| {
            n["id"] == holder.node_id.as_str()
                && n["holding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|h| h["execution_id"] == id.as_str())
        })
    })
    .await;
    assert!(listed, "the holder's heartbeat lists the job");

    // The copy: the job's own message, published again under another message id.
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let stream = js.get_stream("CODEBEAKER_JOBS").await.unwrap();
    let original = stream
        .get_last_raw_message_by_subject("codebeaker.jobs.normal")
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", format!("{id}/copy").as_str());
    js.publish_with_headers(original.subject, headers, original.payload)
        .await
        .unwrap()
        .await
        .unwrap();

    let record = api.final_record(&id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["stdout"], "once\n");
    assert_eq!(record["node"], holder.node_id.as_str());
    let finished = |node: &NodeProcess| {
        node.log_lines()
            .iter()
            .filter(|l| {
                l["fields"]["message"] == "job finished" && l["span"]["execution_id"] == id.as_str()
            })
            .count()
    };
    assert_eq!(finished(holder), 1);
    assert_eq!(finished(other), 0, "the copy ran too");
    let left = other
        .log_lines()
        .iter()
        .any(|l| l["fields"]["message"] == "job left to the node running it");
    assert!(left, "the other node saw the copy and left it");
    assert!(
        stream_empties(async_nats::connect(&nats.url).await.unwrap()).await,
        "the copy was never acked"
    );
}

/// Whether every job message is acked (gone from the work-queue stream) within a few seconds.
async fn stream_empties(client: async_nats::Client) -> bool {
    let js = async_nats::jetstream::new(client);
    eventually(Duration::from_secs(10), || async {
        let mut stream = js.get_stream("CODEBEAKER_JOBS").await.unwrap();
        stream.info().await.unwrap().state.messages == 0
    })
    .await
}
