//! The API's own defences: keys, rate limits, body and input limits, CORS.

mod common;

use common::{test_config, TestNode};
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
}
