//! Shared by every integration test: a real node (real Docker) on a free port, and a client.
#![allow(dead_code)] // each test binary uses a different part of this helper

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use codebeaker::actors::runtime::RuntimeMsg;
use codebeaker::actors::{lookup, names};
use codebeaker::config::{Backend, Config, PoolConfig, PoolRange};
use codebeaker::languages::Languages;
use codebeaker::node::{Node, Role};
use codebeaker::sandbox::container::LABEL_NODE;
use codebeaker::sandbox::Sandbox;
use ractor::rpc::CallResult;
use serde_json::{json, Value};

/// A real nats-server with JetStream on a free loopback port and its own data dir; killed when
/// dropped. `restart` keeps the port and the data.
pub struct NatsServer {
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// With extra nats-server flags, e.g. `--user u --pass p`.
    pub fn start_with(args: &[&str]) -> NatsServer {
        Self::start_on(free_port(), args)
    }

    /// A JetStream cluster of `n` servers on loopback, each with its own data dir.
    pub fn cluster(n: usize) -> Vec<NatsServer> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        routes
            .iter()
            .enumerate()
            .map(|(i, route)| {
                let name = format!("n{i}");
                let listen = format!("nats://127.0.0.1:{route}");
                Self::start_on(
                    free_port(),
                    &[
                        "--server_name",
                        &name,
                        "--cluster_name",
                        "codebeaker-test",
                        "--cluster",
                        &listen,
                        "--routes",
                        &all_routes,
                    ],
                )
            })
            .collect()
    }

    fn start_on(port: u16, args: &[&str]) -> NatsServer {
        let mut server = NatsServer {
            port,
            url: format!("nats://127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server logged (for its permission violations, say).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A server with the shipped `nats/accounts.conf`, as it is but for its store_dir.
    pub fn with_shipped_accounts() -> NatsServer {
        let documented =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/nats/accounts.conf"))
                .unwrap();
        let conf = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        std::fs::write(
            &conf,
            documented.replace("store_dir: /var/lib/codebeaker/nats", ""),
        )
        .unwrap();
        // Read at start; `restart` is not for this server.
        Self::start_with(&["-c", conf.to_str().unwrap()])
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Removes every container labelled with this node id (for nodes a test ends without a
/// shutdown: killed processes, or tests that stop while jobs still run).
pub fn remove_containers_of(node_id: &str) {
    let ids = containers_of(node_id);
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .arg("rm")
            .arg("-f")
            .args(&ids)
            .output();
    }
}

/// Ids of the containers, running or not, labelled with this node id.
pub fn containers_of(node_id: &str) -> Vec<String> {
    let listed = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=codebeaker.node={node_id}"),
        ])
        .output();
    match listed {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct TestNode {
    /// Taken only by `shutdown`.
    node: Option<Node>,
    pub url: String,
    /// The node's own nats-server, unless it shares another's.
    pub nats: Option<NatsServer>,
    http: reqwest::Client,
}

/// True when the suite runs under gVisor (CODEBEAKER_TEST_RUNTIME=runsc), where a few
/// answers legitimately differ: gVisor has its own kernel.
pub fn gvisor() -> bool {
    std::env::var("CODEBEAKER_TEST_RUNTIME").is_ok_and(|r| r == "runsc")
}

/// A config for a test node: port 0, a unique node id (so that one test's start-up cleanup
/// never touches another's containers), the given number of workers, and a short ack_wait so
/// that redelivery tests run in seconds.
pub fn test_config(workers: usize) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        node_id: format!("test-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        workers,
        drain_timeout_secs: 5,
        ..Config::default()
    };
    config.nats.ack_wait_secs = 3;
    // CODEBEAKER_TEST_RUNTIME=runsc runs the same tests under gVisor.
    config.docker.runtime = std::env::var("CODEBEAKER_TEST_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty());
    // CODEBEAKER_TEST_BACKEND=container: pooled cells serve one job each.
    if std::env::var("CODEBEAKER_TEST_BACKEND").is_ok_and(|b| b == "container") {
        config.docker.backend = codebeaker::config::Backend::Container;
    }
    // Cold containers, so that tests can count a node's containers; CODEBEAKER_TEST_POOL=1
    // runs python jobs in pooled ones (the hostile catalogue's second pass).
    config.pool = PoolConfig {
        min: 0,
        max: 0,
        shrink_after_secs: 30,
        languages: match std::env::var("CODEBEAKER_TEST_POOL").as_deref() {
            Ok("1") => [("python".to_string(), PoolRange { min: 1, max: 2 })].into(),
            _ => Default::default(),
        },
    };
    // Tests poll fast and submit hundreds of jobs from one address.
    config.api.rate_per_second = 1e6;
    config.api.burst = 1_000_000;
    config
}

impl TestNode {
    /// A whole node (API and workers) with its own nats-server.
    pub async fn start(workers: usize) -> TestNode {
        Self::with_config(test_config(workers)).await
    }

    pub async fn with_config(mut config: Config) -> TestNode {
        let nats = NatsServer::start();
        config.nats.url = Some(nats.url.clone());
        let mut node = Self::join(config, Role::Serve).await;
        node.nats = Some(nats);
        node
    }

    /// A node of `role` with `workers` workers on a NATS server of the test's.
    pub async fn on(nats: &NatsServer, role: Role, workers: usize) -> TestNode {
        let mut config = test_config(workers);
        config.nats.url = Some(nats.url.clone());
        Self::join(config, role).await
    }

    /// A node on the NATS server already named in `config`.
    pub async fn join(config: Config, role: Role) -> TestNode {
        codebeaker::telemetry::init(codebeaker::config::LogFormat::Pretty, "info");
        let node = Node::start(config, role)
            .await
            .expect("node starts (is dockerd up? run scripts/setup.sh)");
        let url = format!("http://{}", node.addr);
        TestNode {
            node: Some(node),
            url,
            nats: None,
            http: reqwest::Client::new(),
        }
    }

    pub fn node(&self) -> &Node {
        self.node.as_ref().expect("node is running")
    }

    pub async fn shutdown(mut self) {
        self.node.take().expect("node is running").shutdown().await;
    }

    pub fn nats_url(&self) -> String {
        self.nats
            .as_ref()
            .expect("this node owns its nats-server")
            .url
            .clone()
    }

    /// POSTs a raw body to /execute; returns the status code and the JSON answer.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.send(reqwest::Method::POST, "/execute", body).await
    }

    pub async fn post_to(&self, path: &str, request: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, request.to_string())
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, "").await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
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

    /// Ids of this node's job containers that still exist, running or not: every container
    /// with the node's label except those its pools hold ready for a job.
    pub async fn containers(&self) -> Vec<String> {
        let sandbox = Sandbox::connect(self.node().node_id(), &Default::default())
            .await
            .unwrap();
        let listed = sandbox
            .list_labelled(LABEL_NODE, self.node().node_id())
            .await
            .unwrap();
        // Asked after listing: a container listed as pooled was pooled when listed.
        let pooled = self.pooled().await;
        listed
            .into_iter()
            .filter(|id| !pooled.contains(id))
            .collect()
    }

    /// The job containers still there once background removals had their moment (5 s).
    pub async fn leftover_containers(&self) -> Vec<String> {
        eventually(Duration::from_secs(5), || async {
            self.containers().await.is_empty()
        })
        .await;
        self.containers().await
    }

    /// Containers the node's pools hold ready or are starting.
    pub async fn pooled(&self) -> std::collections::HashSet<String> {
        let mut pooled = std::collections::HashSet::new();
        let node = self.node().node_id();
        for language in Languages::load(None).unwrap().names() {
            let name = names::runtime(node, language);
            if let Some(runtime) = lookup::<RuntimeMsg>(&name) {
                if let Ok(CallResult::Success(ids)) = runtime.call(RuntimeMsg::Pooled, None).await {
                    pooled.extend(ids);
                }
            }
        }
        pooled
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

/// Polls GET /execution/{id} until the job is running; false if it is not within `limit`.
pub async fn until_running(node: &TestNode, id: &str, limit: Duration) -> bool {
    eventually(limit, || async {
        let (_, body) = node.get(&format!("/execution/{id}")).await;
        body.contains(r#""status":"running""#)
    })
    .await
}

/// Polls GET /execution/{id} until the record is final.
pub async fn final_record(node: &TestNode, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = node.get(&format!("/execution/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let record: Value = serde_json::from_str(&body).unwrap();
        let state = record["status"].as_str().unwrap();
        if state != "queued" && state != "running" {
            return record;
        }
        assert!(Instant::now() < deadline, "still {state} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `codebeaker` process (api, worker or serve) on the given NATS server; SIGKILLed when dropped.
pub struct NodeProcess {
    pub node_id: String,
    pub url: String,
    child: Child,
    /// Where the process's log (JSON lines) goes.
    pub log: tempfile::NamedTempFile,
}

impl NodeProcess {
    pub async fn start(role: &str, nats_url: &str, workers: usize) -> NodeProcess {
        Self::start_with_env(role, nats_url, workers, &[]).await
    }

    /// With extra `CODEBEAKER_*` settings, which win over the test defaults.
    pub async fn start_with_env(
        role: &str,
        nats_url: &str,
        workers: usize,
        env: &[(&str, &str)],
    ) -> NodeProcess {
        let node_id = format!("proc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_codebeaker"))
            .args([
                role,
                "--nats",
                nats_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--workers", &workers.to_string()])
            .env("CODEBEAKER_NODE_ID", &node_id)
            .env("CODEBEAKER_NATS__ACK_WAIT_SECS", "3")
            .env("CODEBEAKER_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("codebeaker binary runs");
        let process = NodeProcess {
            node_id,
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        };
        let health = format!("{}/health", process.url);
        let up = eventually(Duration::from_secs(30), || async {
            reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(up, "{role} process did not come up");
        process
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most a minute) for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GETs a path of this process's API and returns the JSON answer.
    pub async fn get(&self, path: &str) -> Value {
        let response = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("request sent");
        response.json().await.expect("JSON answer")
    }

    /// Polls the job's record until it is final (or `limit` passes, which fails the test).
    pub async fn final_record(&self, id: &str, limit: Duration) -> Value {
        match self.wait_final(id, limit).await {
            Ok(record) => record,
            Err(record) => panic!("job {id} never ended: {record}"),
        }
    }

    /// The job's final record, or its last record seen when `limit` passed.
    pub async fn wait_final(&self, id: &str, limit: Duration) -> Result<Value, Value> {
        let deadline = Instant::now() + limit;
        loop {
            let record = self.get(&format!("/execution/{id}")).await;
            if record["status"]
                .as_str()
                .is_some_and(|s| !["queued", "running"].contains(&s))
            {
                return Ok(record);
            }
            if Instant::now() > deadline {
                return Err(record);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs to `/execute/async`; returns the execution id.
    pub async fn submit(&self, request: Value) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/execute/async", self.url))
            .json(&request)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.expect("JSON answer");
        body["execution_id"].as_str().unwrap().to_string()
    }

    /// POSTs a request to this process's /execute and returns the JSON answer.
    pub async fn execute(&self, request: Value) -> Value {
        self.execute_as(&uuid::Uuid::new_v4().to_string(), request)
            .await
    }

    /// The same, under a request id of the caller's choosing.
    pub async fn execute_as(&self, request_id: &str, request: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/execute", self.url))
            .header("x-request-id", request_id)
            .json(&request)
            .send()
            .await
            .expect("request sent");
        response.json().await.expect("JSON answer")
    }

    /// The log lines written so far, each parsed (the process logs JSON).
    pub fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log.path())
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("every log line is JSON"))
            .collect()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
        remove_containers_of(&self.node_id);
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            remove_containers_of(node.node_id());
        }
    }
}

/// A node whose python pool holds `min` to `max` cells of `backend`, filled before it returns.
pub async fn pooled_node(
    backend: Backend,
    min: usize,
    max: usize,
    workers: usize,
    shrink_after_secs: u64,
) -> TestNode {
    let mut config = test_config(workers);
    config.docker.backend = backend;
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

/// Cells ready in the python pool, as the metric says.
pub async fn ready(node: &TestNode) -> usize {
    let (_, metrics) = node.get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"codebeaker_container_pool_size{language="python"} "#))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The job prints the id of the container it runs in (from its cgroup path) on its first line.
pub const WHO_AM_I: &str = "import re\nprint(re.search(r'/docker/([0-9a-f]{64})', open('/proc/self/cgroup').read()).group(1))\n";

pub async fn container_of(node: &TestNode, extra: &str) -> (String, serde_json::Value) {
    let record = node.python(&format!("{WHO_AM_I}{extra}")).await;
    assert_eq!(record["status"], "completed", "{record}");
    let stdout = record["stdout"].as_str().unwrap().to_string();
    (stdout.lines().next().unwrap().to_string(), record)
}

/// Where scripts/setup.sh installs the test clients (venvs, npm packages): `path` under it.
pub fn installed(path: &str) -> String {
    let dir = std::env::var("CODEBEAKER_SETUP_DIR")
        .unwrap_or_else(|_| "/var/lib/codebeaker-setup".into());
    format!("{dir}/{path}")
}

/// Runs a test client (an SDK driven by a script of ours) to its end; panics with what it
/// printed unless it exited 0 within `limit`. Returns its stdout and stderr.
pub async fn run_client(mut command: tokio::process::Command, limit: Duration) -> String {
    let what = format!("{:?}", command.as_std());
    let out = tokio::time::timeout(limit, command.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{report}");
    report
}
