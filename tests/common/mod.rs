//! Shared by every integration test: a real node (real Docker) on a free port, and a client.
#![allow(dead_code)] // each test binary uses a different part of this helper

use std::time::{Duration, Instant};

use codebeaker::config::Config;
use codebeaker::node::Node;
use codebeaker::sandbox::container::LABEL_NODE;
use codebeaker::sandbox::Sandbox;
use serde_json::{json, Value};

pub struct TestNode {
    pub node: Node,
    pub url: String,
    http: reqwest::Client,
}

/// A config for a test node: port 0, a unique node id (so that one test's start-up cleanup
/// never touches another's containers), and the given number of workers.
pub fn test_config(workers: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        node_id: format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        workers,
        ..Config::default()
    }
}

impl TestNode {
    pub async fn start(workers: usize) -> TestNode {
        Self::with_config(test_config(workers)).await
    }

    pub async fn with_config(config: Config) -> TestNode {
        codebeaker::telemetry::init(codebeaker::config::LogFormat::Pretty, "info");
        let node = Node::start(config)
            .await
            .expect("node starts (is dockerd up? run scripts/setup.sh)");
        let url = format!("http://{}", node.addr);
        TestNode {
            node,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs a raw body to /execute; returns the status code and the JSON answer.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/execute", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }

    pub async fn post(&self, request: Value) -> (u16, Value) {
        self.post_raw(request.to_string()).await
    }

    /// Runs Python code and returns the record, asserting the request itself succeeded.
    pub async fn python(&self, code: &str) -> Value {
        self.run(json!({"language": "python", "code": code})).await
    }

    pub async fn run(&self, request: Value) -> Value {
        let (status, record) = self.post(request).await;
        assert_eq!(status, 200, "unexpected answer: {record}");
        record
    }

    /// POSTs a request to /execute in the background; the task yields the JSON answer.
    pub fn spawn_post(&self, request: Value) -> tokio::task::JoinHandle<Value> {
        let (http, url) = (self.http.clone(), format!("{}/execute", self.url));
        tokio::spawn(async move {
            let response = http
                .post(url)
                .json(&request)
                .send()
                .await
                .expect("request sent");
            response.json::<Value>().await.expect("JSON answer")
        })
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("request sent");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Ids of this node's containers that still exist, running or not.
    pub async fn containers(&self) -> Vec<String> {
        let sandbox = Sandbox::connect(self.node.node_id(), &Default::default())
            .await
            .unwrap();
        sandbox
            .list_labelled(LABEL_NODE, self.node.node_id())
            .await
            .unwrap()
    }
}

/// Polls `check` every 50 ms until it returns true or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
