//! The API's own defences: keys, rate limits, body and input limits, CORS.

mod common;

use std::time::Duration;

use common::{eventually, test_config, TestNode};
use serde_json::{json, Value};

#[tokio::test]
async fn without_a_valid_key_the_execution_api_answers_401() {
    let mut config = test_config(1);
    config.api.keys = vec!["key-one".into(), "key-two".into()];
    let node = TestNode::with_config(config).await;
    let http = reqwest::Client::new();
    let request = json!({"language": "python", "code": "print('authorised')"});
    for auth in [None, Some("Bearer wrong"), Some("key-one"), Some("Bearer ")] {
        let mut req = http.post(format!("{}/execute", node.url)).json(&request);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let response = http
        .post(format!("{}/execute", node.url))
        .header("authorization", "Bearer key-two")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["stdout"], "authorised\n");
    assert!(node.leftover_containers().await.is_empty());
    // Liveness and metrics stay open for probes.
    assert_eq!(node.get("/health").await.0, 200);
}

#[tokio::test]
async fn past_the_rate_limit_the_answer_is_429_with_retry_after() {
    let mut config = test_config(1);
    config.api.burst = 2;
    config.api.rate_per_second = 0.5;
    let node = TestNode::with_config(config).await;
    assert_eq!(node.get("/languages").await.0, 200);
    assert_eq!(node.get("/languages").await.0, 200);
    let response = reqwest::get(format!("{}/languages", node.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn input_limits_on_files_names_and_stdin() {
    let node = TestNode::start(1).await;
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"name": format!("f{i}.py"), "content": ""}))
        .collect();
    let (status, body) = node
        .post(json!({"language": "python", "code": "x", "files": many}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (422, json!("files")),
        "{body}"
    );
    let long_name = format!("{}.py", "n".repeat(200));
    let (status, body) = node
        .post(json!({"language": "python", "code": "x", "files": [{"name": long_name, "content": ""}]}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (422, json!("files")),
        "{body}"
    );
    let (status, body) = node
        .post(json!({"language": "python", "code": "x", "stdin": "s".repeat(1024 * 1024 + 1)}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (413, json!("stdin")),
        "{body}"
    );
    let (status, body) = node
        .post(json!({"language": "python", "code": "x", "args": vec!["a"; 65]}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (422, json!("args")),
        "{body}"
    );
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_configured() {
    let node = TestNode::start(1).await;
    let response = reqwest::Client::new()
        .get(format!("{}/languages", node.url))
        .header("origin", "https://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let mut config = test_config(1);
    config.api.cors_origins = vec!["https://judge.example".into()];
    let node = TestNode::with_config(config).await;
    let response = reqwest::Client::new()
        .get(format!("{}/languages", node.url))
        .header("origin", "https://judge.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://judge.example"
    );
    let foreign = reqwest::Client::new()
        .get(format!("{}/languages", node.url))
        .header("origin", "https://other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let body: serde_json::Value = foreign.json().await.unwrap();
    assert_eq!(body["error"]["code"], "origin_not_allowed", "{body}");
}

/// Sends one HTTP/1.1 request from the given loopback address; returns the status code.
async fn raw_request(from: std::net::IpAddr, url: &str, method: &str, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn from(last: u32) -> std::net::IpAddr {
    std::net::Ipv4Addr::from(0x7f00_0000 | last).into()
}

#[tokio::test]
async fn one_client_over_its_limit_leaves_the_others_served() {
    let mut config = test_config(1);
    config.api.burst = 2;
    config.api.rate_per_second = 0.1;
    config.api.trusted_proxies = vec![from(4)];
    let node = TestNode::with_config(config).await;
    let get = |ip, forwarded: Option<&'static str>| {
        let http = reqwest::Client::builder()
            .local_address(ip)
            .build()
            .unwrap();
        let url = format!("{}/languages", node.url);
        async move {
            let mut request = http.get(url);
            if let Some(f) = forwarded {
                request = request.header("x-forwarded-for", f);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    let noisy = [
        get(from(2), None).await,
        get(from(2), None).await,
        get(from(2), None).await,
    ];
    assert_eq!(noisy, [200, 200, 429]);
    assert_eq!(get(from(3), None).await, 200, "a quiet client was starved");
    // An untrusted client's X-Forwarded-For is ignored: it cannot dodge its own bucket.
    assert_eq!(get(from(2), Some("127.9.9.9")).await, 429);
    // Behind the trusted proxy, each forwarded-for client has its own bucket.
    let proxied = [
        get(from(4), Some("127.9.9.9")).await,
        get(from(4), Some("127.9.9.9")).await,
        get(from(4), Some("127.9.9.9")).await,
        get(from(4), Some("127.9.9.10")).await,
    ];
    assert_eq!(proxied, [200, 200, 429, 200]);
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn thousands_of_clients_and_made_up_methods_leave_memory_and_metrics_bounded() {
    let node = TestNode::start(1).await;
    let metrics_size = || async { node.get("/metrics").await.1.len() };
    let batch = |first: u32| {
        let url = node.url.clone();
        async move {
            for i in first..first + 2000 {
                // Distinct addresses across 127.0.0.0/8, and a new method every time.
                let ip = from(0x10000 + i * 7);
                let status = raw_request(ip, &url, "GET", "/languages").await;
                assert_eq!(status, 200);
                let made_up = format!("BREW{i}");
                assert_eq!(raw_request(ip, &url, &made_up, "/languages").await, 405);
            }
        }
    };
    batch(0).await;
    metrics_size().await; // its own series are there from now on
    let (rss, size) = (rss_bytes(), metrics_size().await);
    batch(2000).await;
    let (rss_after, size_after) = (rss_bytes(), metrics_size().await);
    let metrics = node.get("/metrics").await.1;
    assert!(
        !metrics.contains("BREW"),
        "a made-up method became a metric series"
    );
    assert!(metrics.contains(r#"method="other""#));
    assert!(
        size_after < size + 256,
        "/metrics grew from {size} to {size_after} bytes:\n{metrics}"
    );
    assert!(
        rss_after < rss + 32 * 1024 * 1024,
        "RSS grew from {rss} to {rss_after} bytes"
    );
}

async fn in_flight(node: &TestNode) -> String {
    let (_, text) = node.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with("codebeaker_http_requests_in_flight "))
        .unwrap_or("none")
        .to_string()
}

#[tokio::test]
async fn clients_that_hang_up_mid_request_leave_the_in_flight_gauge_right() {
    use tokio::io::AsyncWriteExt;
    let node = TestNode::start(1).await;
    let server: std::net::SocketAddr = node.url.trim_start_matches("http://").parse().unwrap();
    let body = serde_json::json!({"language": "python", "code": "import time; time.sleep(20)"})
        .to_string();
    let request = format!(
        "POST /execute HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Three sync requests whose clients hang up while their jobs wait or run.
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        streams.push(stream);
    }
    let counted = eventually(Duration::from_secs(10), || async {
        // The three, and the request reading the gauge.
        in_flight(&node).await == "codebeaker_http_requests_in_flight 4"
    })
    .await;
    assert!(counted, "{}", in_flight(&node).await);
    drop(streams);
    let settled = eventually(Duration::from_secs(10), || async {
        in_flight(&node).await == "codebeaker_http_requests_in_flight 1"
    })
    .await;
    assert!(settled, "{}", in_flight(&node).await);
    let (_, metrics) = node.get("/metrics").await;
    assert!(
        metrics.contains(r#"status="499""#),
        "hang-ups are counted as 499"
    );
}
