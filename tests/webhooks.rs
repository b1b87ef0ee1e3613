//! Webhooks: a final record (and a batch, once all of it is final) is POSTed to its
//! `callback_url`, signed; failed tries are retried with backoff, durably (through a node
//! restart); the record shows how delivery stands; URLs and addresses the policy does not
//! allow are refused. The receiver is a real HTTP server on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codebeaker::config::{Config, WebhooksConfig};
use codebeaker::node::Role;
use common::{eventually, test_config, NatsServer, TestNode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use warp::Filter;

const SECRET: &str = "test-secret-0123456789";

/// One POST as the receiver got it.
#[derive(Debug, Clone)]
struct Hit {
    signature: String,
    attempt: String,
    body: bytes::Bytes,
}

/// An HTTP receiver on 127.0.0.1 that answers 500 to its first `failures` POSTs, then 204.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(failures: u32) -> Receiver {
        Self::start_on(0, failures).await
    }

    async fn start_on(port: u16, failures: u32) -> Receiver {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicU32::new(failures));
        let kept = hits.clone();
        let route = warp::post()
            .and(warp::header::<String>("x-codebeaker-signature"))
            .and(warp::header::<String>("x-codebeaker-attempt"))
            .and(warp::body::bytes())
            .map(move |signature, attempt, body| {
                kept.lock().unwrap().push(Hit {
                    signature,
                    attempt,
                    body,
                });
                let fail = failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                match fail {
                    true => warp::http::StatusCode::INTERNAL_SERVER_ERROR,
                    false => warp::http::StatusCode::NO_CONTENT,
                }
            });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(warp::serve(route).incoming(listener).run());
        Receiver { addr, hits, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn webhooks(allow_hosts: &[&str], private: bool, max_attempts: u32) -> WebhooksConfig {
    WebhooksConfig {
        allow_hosts: allow_hosts.iter().map(|h| h.to_string()).collect(),
        secret: Some(SECRET.into()),
        max_attempts,
        first_retry_ms: 200,
        timeout_secs: 5,
        allow_private_addresses: private,
    }
}

fn config_with(hooks: WebhooksConfig) -> Config {
    let mut config = test_config(1);
    config.webhooks = hooks;
    config
}

/// What a receiver does with the header: recompute the HMAC over "<t>.<body>".
fn signed_by_us(hit: &Hit) -> bool {
    let Some((t, v1)) = hit.signature.split_once(",v1=") else {
        return false;
    };
    let t = t.trim_start_matches("t=");
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hit.body);
    (0..60).contains(&age) && mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

/// What `path` answers once its `callback` is no longer pending (within 30 s).
async fn delivered_at(node: &TestNode, path: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let read: Value = serde_json::from_str(&node.get(path).await.1).unwrap();
        if read["callback"]["state"] != "pending" {
            return read;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the callback is still pending: {read}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a program that names `url` as its callback; its record once delivery has settled.
async fn run_then_settle(node: &TestNode, url: &str) -> Value {
    let (status, answer) = node
        .post(json!({"language": "python", "code": "print(1)", "callback_url": url}))
        .await;
    assert_eq!(status, 200, "{answer}");
    delivered(node, answer["execution_id"].as_str().unwrap()).await
}

async fn delivered(node: &TestNode, id: &str) -> Value {
    delivered_at(node, &format!("/execution/{id}")).await
}

#[tokio::test]
async fn a_final_record_is_posted_signed_and_the_record_says_delivered() {
    let receiver = Receiver::start(0).await;
    let node = TestNode::with_config(config_with(webhooks(&["127.0.0.1"], true, 3))).await;
    let request =
        json!({"language": "python", "code": "print('hooked')", "callback_url": receiver.url()});
    let (status, answer) = node.post(request).await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["execution_id"].as_str().unwrap();
    let record = delivered(&node, id).await;
    assert_eq!(
        record["callback"],
        json!({"state": "delivered", "attempts": 1}),
        "{record}"
    );
    assert_eq!(record["callback_url"], receiver.url());
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(signed_by_us(&hits[0]), "{:?}", hits[0]);
    assert_eq!(hits[0].attempt, "1");
    let posted: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(posted["stdout"], "hooked\n");
    assert_eq!(posted["status"], "completed");
    assert_eq!(posted["execution_id"], id);
    // A forged body does not verify.
    let forged = Hit {
        body: bytes::Bytes::from_static(b"{\"stdout\":\"forged\"}"),
        ..hits[0].clone()
    };
    assert!(!signed_by_us(&forged));
    node.shutdown().await;
}

#[tokio::test]
async fn failed_tries_are_retried_with_backoff_then_given_up() {
    let flaky = Receiver::start(2).await;
    let down = Receiver::start(u32::MAX).await;
    let node = TestNode::with_config(config_with(webhooks(&["127.0.0.1"], true, 3))).await;
    let submit = |url: String| {
        let node = &node;
        async move {
            let request = json!({"language": "python", "code": "print(1)", "callback_url": url});
            let (status, answer) = node.post_to("/execute/async", request).await;
            assert_eq!(status, 202, "{answer}");
            answer["execution_id"].as_str().unwrap().to_string()
        }
    };
    let recovers = submit(flaky.url()).await;
    let never = submit(down.url()).await;
    let record = delivered(&node, &recovers).await;
    assert_eq!(
        record["callback"],
        json!({"state": "delivered", "attempts": 3}),
        "{record}"
    );
    let attempts: Vec<String> = flaky.hits().iter().map(|h| h.attempt.clone()).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    let record = delivered(&node, &never).await;
    assert_eq!(record["callback"]["state"], "failed", "{record}");
    assert_eq!(record["callback"]["attempts"], 3);
    assert!(
        record["callback"]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{record}"
    );
    assert_eq!(down.hits().len(), 3, "no try after the last");
    node.shutdown().await;
}

#[tokio::test]
async fn urls_the_policy_does_not_allow_are_refused_with_the_field_named() {
    let strict = TestNode::with_config(config_with(webhooks(
        &["127.0.0.1", "hooks.example.com"],
        false,
        3,
    )))
    .await;
    let cases = [
        ("https://evil.example/", "not one webhooks may call"),
        ("ftp://hooks.example.com/", "http or https"),
        ("not a url", "not a URL"),
        (
            &*format!("https://hooks.example.com/{}", "x".repeat(2048)),
            "at most 2048 bytes",
        ),
        // Allowed by name, but loopback: refused unless private addresses are enabled.
        ("http://127.0.0.1:9/hook", "non-public"),
    ];
    for (url, why) in cases {
        let (status, body) = strict
            .post(json!({"language": "python", "code": "1", "callback_url": url}))
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["field"], "callback_url", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{url}: {body}"
        );
    }
    let batch = json!({"executions": [{"language": "python", "code": "1"}], "callback_url": "https://evil.example/"});
    let (status, body) = strict.post_to("/batch", batch).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("callback_url")),
        "{body}"
    );
    strict.shutdown().await;

    let off = TestNode::start(0).await;
    let (status, body) = off
        .post(json!({"language": "python", "code": "1", "callback_url": "https://hooks.example.com/"}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("webhooks are off"),
        "{body}"
    );
    off.shutdown().await;
}

#[tokio::test]
async fn a_name_that_resolves_to_a_private_address_is_refused_at_delivery() {
    let receiver = Receiver::start(0).await;
    let node = TestNode::with_config(config_with(webhooks(&["localhost"], false, 3))).await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let record = run_then_settle(&node, &url).await;
    assert_eq!(record["callback"]["state"], "failed", "{record}");
    assert_eq!(
        record["callback"]["attempts"], 1,
        "a refusal is not retried: {record}"
    );
    assert!(
        record["callback"]["error"]
            .as_str()
            .unwrap()
            .contains("non-public"),
        "{record}"
    );
    assert!(receiver.hits().is_empty());
    node.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_posted_once_when_all_of_it_is_final() {
    let receiver = Receiver::start(0).await;
    let node = TestNode::with_config(config_with(webhooks(&["127.0.0.1"], true, 3))).await;
    let executions: Vec<Value> = (0..3)
        .map(|i| json!({"language": "python", "code": format!("import time\ntime.sleep(0.{i})\nprint({i})")}))
        .collect();
    let (status, batch) = node
        .post_to(
            "/batch",
            json!({"executions": executions, "callback_url": receiver.url(), "wait": true}),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    let id = batch["batch_id"].as_str().unwrap();
    let read = delivered_at(&node, &format!("/batch/{id}")).await;
    assert_eq!(read["callback"]["state"], "delivered", "{read}");
    assert_eq!(read["callback"]["attempts"], 1);
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "one POST for the batch: {hits:?}");
    assert!(signed_by_us(&hits[0]));
    let posted: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(posted["batch_id"], id);
    let outputs: Vec<&str> = posted["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stdout"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["0\n", "1\n", "2\n"]);
    node.shutdown().await;
}

#[tokio::test]
async fn a_delivery_pending_when_its_node_stops_is_made_by_the_next_node() {
    let nats = NatsServer::start();
    let port = common::free_port();
    // Nobody listens on `port` yet: the first tries fail to connect.
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut config = config_with(webhooks(&["127.0.0.1"], true, 20));
    config.webhooks.first_retry_ms = 1000;
    config.nats.url = Some(nats.url.clone());
    let first = TestNode::join(config.clone(), Role::Serve).await;
    let (status, answer) = first
        .post(json!({"language": "python", "code": "print('survives')", "callback_url": url}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["execution_id"].as_str().unwrap().to_string();
    let tried = eventually(Duration::from_secs(20), || async {
        let (_, body) = first.get(&format!("/execution/{id}")).await;
        let record: Value = serde_json::from_str(&body).unwrap();
        record["callback"]["attempts"].as_u64() >= Some(1)
    })
    .await;
    assert!(tried);
    first.shutdown().await;

    let receiver = Receiver::start_on(port, 0).await;
    config.node_id = format!("{}-b", config.node_id);
    let second = TestNode::join(config, Role::Api).await;
    let record = delivered(&second, &id).await;
    assert_eq!(record["callback"]["state"], "delivered", "{record}");
    let attempts = record["callback"]["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "{record}");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].attempt, attempts.to_string());
    let posted: Value = serde_json::from_slice(&hits[0].body).unwrap();
    assert_eq!(posted["stdout"], "survives\n");
    second.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_given_up_on_at_the_post_timeout() {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let mut hooks = webhooks(&["127.0.0.1"], true, 2);
    hooks.timeout_secs = 1;
    let node = TestNode::with_config(config_with(hooks)).await;
    let url = format!("http://127.0.0.1:{port}/hook");
    let record = run_then_settle(&node, &url).await;
    assert_eq!(record["callback"]["state"], "failed", "{record}");
    assert_eq!(record["callback"]["attempts"], 2);
    let error = record["callback"]["error"].as_str().unwrap();
    assert!(error.contains("POST failed"), "{record}");
    held.abort();
    node.shutdown().await;
}
