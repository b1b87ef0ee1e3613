//! Every kind of bad input gets its 4xx JSON error, and nothing runs or is left behind.

mod common;

use common::TestNode;
use serde_json::{json, Value};

fn assert_error(status: u16, body: &Value, want_status: u16, code: &str, field: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(
        body["error"]["field"],
        field.map_or(Value::Null, |f| json!(f)),
        "{body}"
    );
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_json_is_400() {
    let node = TestNode::start(1).await;
    let (status, body) = node.post_raw("{\"language\": \"python\", \"code\": ").await;
    assert_error(status, &body, 400, "invalid_json", None);
    let (status, body) = node.post(json!({"code": "print(1)"})).await;
    assert_error(status, &body, 400, "invalid_json", None);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing field `language`"));
}

#[tokio::test]
async fn an_unsupported_field_is_400_not_silently_ignored() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "python", "code": "print(1)", "network_enabled": true}))
        .await;
    assert_error(status, &body, 400, "invalid_json", None);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("network_enabled"));
}

#[tokio::test]
async fn an_unknown_language_is_400_and_lists_the_known_ones() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "brainfuck", "code": "x"}))
        .await;
    assert_error(status, &body, 400, "unknown_language", Some("language"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("known languages: python"));
}

#[tokio::test]
async fn empty_code_is_422() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "python", "code": " \n "}))
        .await;
    assert_error(status, &body, 422, "invalid_field", Some("code"));
}

#[tokio::test]
async fn out_of_range_limits_are_422_naming_the_field_and_range() {
    let node = TestNode::start(1).await;
    for timeout in [json!(0), json!(-1), json!(61)] {
        let (status, body) = node
            .post(json!({"language": "python", "code": "print(1)", "timeout": timeout}))
            .await;
        assert_error(status, &body, 422, "limit_out_of_range", Some("timeout"));
    }
    for memory in ["1k", "64g"] {
        let (status, body) = node
            .post(json!({"language": "python", "code": "print(1)", "memory_limit": memory}))
            .await;
        assert_error(
            status,
            &body,
            422,
            "limit_out_of_range",
            Some("memory_limit"),
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("between 16m and 2g"));
    }
    let (status, body) = node
        .post(json!({"language": "python", "code": "print(1)", "memory_limit": "lots"}))
        .await;
    assert_error(status, &body, 400, "invalid_json", None);
    for stack in ["1k", "1g"] {
        let (status, body) = node
            .post(json!({"language": "c", "code": "int main(){}", "stack_limit": stack}))
            .await;
        assert_error(
            status,
            &body,
            422,
            "limit_out_of_range",
            Some("stack_limit"),
        );
    }
}

#[tokio::test]
async fn compiler_options_go_to_compiled_languages_only_and_as_plain_words() {
    let node = TestNode::start(1).await;
    let (status, body) = node
        .post(json!({"language": "python", "code": "print(1)", "compiler_options": "-O2"}))
        .await;
    assert_error(
        status,
        &body,
        422,
        "invalid_field",
        Some("compiler_options"),
    );
    for options in [
        "-O2; rm -rf /work",
        "$(id)",
        "-O2 `id`",
        "-O2\n-g",
        &"-O".repeat(300),
    ] {
        let (status, body) = node
            .post(json!({"language": "c", "code": "int main(){}", "compiler_options": options}))
            .await;
        assert_error(
            status,
            &body,
            422,
            "invalid_field",
            Some("compiler_options"),
        );
    }
}

#[tokio::test]
async fn code_over_the_size_limit_is_413() {
    let node = TestNode::start(1).await;
    let code = format!("# {}\nprint(1)", "x".repeat(256 * 1024));
    let (status, body) = node.post(json!({"language": "python", "code": code})).await;
    assert_error(status, &body, 413, "too_large", Some("code"));
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_before_it_is_read() {
    let node = TestNode::start(1).await;
    let (status, body) = node.post_raw(vec![b' '; 3 * 1024 * 1024]).await;
    assert_error(status, &body, 413, "body_too_large", None);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let node = TestNode::start(1).await;
    let (status, body) = node.get("/nope").await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = node.get("/execute").await;
    assert_eq!(status, 405, "{body}");
}

#[tokio::test]
async fn bad_input_starts_no_container() {
    let node = TestNode::start(1).await;
    node.post(json!({"language": "brainfuck", "code": "x"}))
        .await;
    node.post(json!({"language": "python", "code": "x", "timeout": 999}))
        .await;
    assert!(node.leftover_containers().await.is_empty());
    let (_, text) = node.get("/metrics").await;
    assert!(!text.contains("codebeaker_executions_total{"), "{text}");
}

#[test]
fn a_bad_config_stops_the_process_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, key) in [
        ("[api]\nrate_per_second = 0\n", "api.rate_per_second"),
        ("[docker]\nuser = \"0\"\n", "docker.user"),
        ("[pool]\nmin = 3\nmax = 1\n", "pool.min"),
    ] {
        let path = dir.path().join("codebeaker.toml");
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"))
            .arg("--config")
            .arg(&path)
            .arg("serve")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains(&format!("`{key}`")), "{toml}: {stderr}");
    }
}

/// Python's http.client and requests send the whole body before they read the answer: they
/// must still read the 413 (or 411) JSON rather than a broken pipe.
const PYTHON_CLIENTS: &str = r#"
import http.client, json, sys, requests
host, port = sys.argv[1], int(sys.argv[2])
url = f"http://{host}:{port}/execute"
big = json.dumps({"language": "python", "code": "x" * (8 << 20)}).encode()
huge_stdin = json.dumps({"language": "python", "code": "print(1)", "stdin": "y" * (8 << 20)}).encode()
over_stdin = json.dumps({"language": "python", "code": "print(1)", "stdin": "y" * (3 << 19)}).encode()
def chunks():
    for _ in range(64):
        yield b"z" * (128 << 10)
answers = []
conn = http.client.HTTPConnection(host, port, timeout=30)
for body in (big, huge_stdin, over_stdin):
    conn.request("POST", "/execute", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    answers.append(["http.client", r.status, json.loads(r.read())["error"]["code"]])
    if r.will_close:
        conn.close()
        conn = http.client.HTTPConnection(host, port, timeout=30)
for body in (big, huge_stdin, over_stdin, chunks()):
    r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    answers.append(["requests", r.status_code, r.json()["error"]["code"]])
print(json.dumps(answers))
"#;

#[tokio::test]
async fn clients_that_send_all_of_an_oversized_body_still_read_the_answer() {
    let node = TestNode::start(1).await;
    let addr = node.node().addr;
    let out = tokio::process::Command::new("python3")
        .args([
            "-c",
            PYTHON_CLIENTS,
            &addr.ip().to_string(),
            &addr.port().to_string(),
        ])
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs requests)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = json!([
        ["http.client", 413, "body_too_large"],
        ["http.client", 413, "body_too_large"],
        ["http.client", 413, "too_large"],
        ["requests", 413, "body_too_large"],
        ["requests", 413, "body_too_large"],
        ["requests", 413, "too_large"],
        ["requests", 411, "length_required"],
    ]);
    assert_eq!(answers, expected);
}
