//! The Judge0 CE API at `/judge0`: Judge0's own Python SDK (judge0 0.0.8, installed by
//! scripts/setup.sh into a venv, run unmodified by tests/judge0/sdk.py) and raw HTTP, against
//! a real node. Covers every status, batches, the SDK's test cases, base64 with bytes that
//! are not UTF-8, `fields`, `wait=true`, `callback_url`, authentication, and C, C++, Java,
//! JavaScript and Python.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::{eventually, test_config, TestNode};
use serde_json::{json, Value};
use warp::Filter;

const KEY: &str = "judge0-test-key";

/// What Judge0 answers when no fields are asked for, sorted.
const DEFAULT_FIELDS: [&str; 8] = [
    "compile_output",
    "memory",
    "message",
    "status",
    "stderr",
    "stdout",
    "time",
    "token",
];

/// Runs one scenario of sdk.py with the given environment; panics with its output unless
/// it passed.
async fn sdk(scenario: &str, env: &[(&str, String)]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/judge0/sdk.py");
    let mut command = tokio::process::Command::new(common::installed("judge0-venv/bin/python"));
    command.arg(script).arg(scenario).envs(env.iter().cloned());
    // The SDK would reach for Judge0's public cloud without these; the tests name theirs.
    command.env("JUDGE0_SUPPRESS_PREVIEW_WARNING", "1");
    common::run_client(command, Duration::from_secs(240)).await
}

fn endpoint(node: &TestNode) -> String {
    format!("{}/judge0", node.url)
}

fn explicit(node: &TestNode, headers: Value) -> Vec<(&'static str, String)> {
    vec![
        ("CB_ENDPOINT", endpoint(node)),
        ("CB_HEADERS", headers.to_string()),
    ]
}

async fn keyed_node() -> TestNode {
    let mut config = test_config(3);
    config.api.keys = vec![KEY.into()];
    TestNode::with_config(config).await
}

#[tokio::test]
async fn the_sdk_runs_c_cpp_java_javascript_and_python_and_its_test_cases() {
    let node = TestNode::start(3).await;
    let env = explicit(&node, json!({}));
    sdk("languages", &env).await;
    sdk("test_cases", &env).await;
    sdk("full_record", &env).await;
}

#[tokio::test]
async fn the_sdk_from_its_environment_sees_every_status_with_an_api_key() {
    let node = keyed_node().await;
    let env = [
        ("JUDGE0_CE_ENDPOINT", endpoint(&node)),
        (
            "JUDGE0_CE_AUTH_HEADERS",
            json!({"X-Auth-Token": KEY}).to_string(),
        ),
    ];
    sdk("statuses", &env).await;
    sdk(
        "refused_key",
        &explicit(&node, json!({"X-Auth-Token": "wrong"})),
    )
    .await;
}

/// Raw HTTP to the Judge0 API, with an optional `X-Auth-Token`.
async fn call(
    node: &TestNode,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}/judge0{path}", node.url);
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(node: &TestNode, path: &str) -> (u16, Value) {
    call(node, reqwest::Method::GET, path, None).await
}

async fn post(node: &TestNode, path: &str, body: Value) -> (u16, Value) {
    call(node, reqwest::Method::POST, path, Some(body)).await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

/// Polls a submission until Judge0 would call it done (status past 2).
async fn finished(node: &TestNode, token: &str, query: &str) -> Value {
    let path = format!("/submissions/{token}?{query}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = get(node, &path).await;
        if body["status"]["id"].as_u64().is_some_and(|id| id > 2) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{token} never finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn wait_true_answers_the_default_fields_and_fields_pick_exactly_what_is_asked() {
    let node = TestNode::start(2).await;
    let (status, body) = post(
        &node,
        "/submissions?wait=true",
        json!({"source_code": "print(input())", "language_id": 71, "stdin": "hi"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(keys(&body), DEFAULT_FIELDS);
    assert_eq!(body["status"], json!({"id": 3, "description": "Accepted"}));
    assert_eq!(body["stdout"], "hi\n");
    assert_eq!(body["stderr"], Value::Null, "empty outputs are null");
    assert!(
        body["time"].as_str().unwrap().parse::<f64>().is_ok(),
        "{body}"
    );
    let token = body["token"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(token).is_ok());

    let (_, picked) = get(
        &node,
        &format!("/submissions/{token}?fields=stdout,status_id,language"),
    )
    .await;
    assert_eq!(
        picked,
        json!({"stdout": "hi\n", "status_id": 3, "language": {"id": 71, "name": picked["language"]["name"]}})
    );
    let (_, all) = get(&node, &format!("/submissions/{token}?fields=*")).await;
    assert_eq!(all.as_object().unwrap().len(), 35, "{all}");
    for (field, value) in [
        ("language_id", json!(71)),
        ("stdin", json!("hi")),
        ("number_of_runs", json!(1)),
    ] {
        assert_eq!(all[field], value, "{field}");
    }
    let stamp = all["created_at"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok()
            && stamp.len() == 24,
        "{stamp}"
    );
    let (status, bad) = get(&node, &format!("/submissions/{token}?fields=stdout,secret")).await;
    assert_eq!(
        (status, bad),
        (400, json!({"error": "invalid fields: [secret]"}))
    );
    let (status, _) = get(&node, "/submissions/0e286953-fa59-4652-8583-aa28e9f1ab75").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bytes_that_are_not_utf8_come_back_exactly_in_base64_and_refused_as_text() {
    let node = TestNode::start(1).await;
    let code = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe ok')";
    let (status, created) = post(
        &node,
        "/submissions?base64_encoded=true",
        json!({"source_code": b64(code.as_bytes()), "language_id": 71}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(keys(&created), ["token"], "no wait: the token alone");
    let token = created["token"].as_str().unwrap();
    let done = finished(&node, token, "base64_encoded=true").await;
    assert_eq!(done["stdout"], b64(b"\xff\xfe ok"));
    let (status, refused) = get(&node, &format!("/submissions/{token}")).await;
    assert_eq!(status, 400);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("use base64_encoded=true"),
        "{refused}"
    );
}

#[tokio::test]
async fn batches_take_each_submission_on_its_own_and_read_back_in_order() {
    let node = TestNode::start(2).await;
    let (status, tokens) = post(
        &node,
        "/submissions/batch",
        json!({"submissions": [
            {"source_code": "print(1)", "language_id": 71},
            {"source_code": "print(2)", "language_id": 9999},
            {"source_code": "console.log(3)", "language_id": 63},
        ]}),
    )
    .await;
    assert_eq!(status, 201, "{tokens}");
    assert_eq!(
        tokens[1],
        json!({"language_id": ["language with id 9999 doesn't exist"]})
    );
    let (first, third) = (
        tokens[0]["token"].as_str().unwrap(),
        tokens[2]["token"].as_str().unwrap(),
    );
    finished(&node, first, "").await;
    finished(&node, third, "").await;
    let unknown = uuid::Uuid::new_v4();
    let (status, read) = get(
        &node,
        &format!("/submissions/batch?tokens={first},{unknown},{third}&fields=stdout,token"),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        read,
        json!({"submissions": [{"stdout": "1\n", "token": first}, null, {"stdout": "3\n", "token": third}]})
    );
    let (status, none) = post(
        &node,
        "/submissions/batch",
        json!({"submissions": [{"language_id": 1}]}),
    )
    .await;
    assert_eq!(status, 422, "{none}");
    let (status, empty) = get(&node, "/submissions/batch?tokens=").await;
    assert_eq!(
        (status, empty),
        (
            400,
            json!({"error": "there should be at least one submission in a batch"})
        )
    );
}

#[tokio::test]
async fn values_outside_the_bounds_get_judge0s_422_naming_each_field() {
    let node = TestNode::start(1).await;
    let (status, body) = post(
        &node,
        "/submissions",
        json!({"source_code": "print(1)", "language_id": 71, "memory_limit": 10,
               "wall_time_limit": 100000, "enable_network": true, "compiler_options": "-O2"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        keys(&body),
        [
            "compiler_options",
            "enable_network",
            "memory_limit",
            "wall_time_limit"
        ]
    );
    assert_eq!(
        body["memory_limit"],
        json!(["must be greater than or equal to 16384"])
    );
    let (status, body) = post(
        &node,
        "/submissions",
        json!({"source_code": "x", "language_id": 12345}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            422,
            json!({"language_id": ["language with id 12345 doesn't exist"]})
        )
    );
    let (status, body) = post(&node, "/submissions", json!("not an object")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(node.leftover_containers().await, Vec::<String>::new());
}

#[tokio::test]
async fn redirected_stderr_arguments_files_options_and_the_stack_limit_take_effect() {
    let node = TestNode::start(3).await;
    let zip = {
        use std::io::Write;
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("helper.py", zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(b"GREETING = 'from the zip'").unwrap();
        out.finish().unwrap().into_inner()
    };
    let run = |body: Value| {
        let node = &node;
        async move {
            let (status, done) = post(
                node,
                "/submissions?wait=true&fields=stdout,status,exit_signal",
                body,
            )
            .await;
            assert_eq!(status, 201, "{done}");
            done
        }
    };
    let merged = run(json!({"language_id": 71, "redirect_stderr_to_stdout": true,
        "source_code": "import sys\nprint('out', flush=True)\nprint('err', file=sys.stderr)"}))
    .await;
    assert_eq!(merged["stdout"], "out\nerr\n");
    let zipped = run(json!({"language_id": 71, "additional_files": b64(&zip),
        "source_code": "import helper\nprint(helper.GREETING)"}))
    .await;
    assert_eq!(zipped["stdout"], "from the zip\n");
    let optioned = run(json!({"language_id": 50, "compiler_options": "-DANSWER=42",
        "source_code": "#include <stdio.h>\nint main(){printf(\"%d\\n\", ANSWER);}"}))
    .await;
    assert_eq!(optioned["stdout"], "42\n");
    let deep = "#include <stdio.h>\nint f(int n){volatile char pad[1024]; pad[0]=n; return n? f(n-1)+pad[0] : 0;}\n\
                int main(){printf(\"%d\\n\", f(16000));}";
    let shallow = run(json!({"language_id": 50, "stack_limit": 1024, "source_code": deep})).await;
    assert_eq!(
        shallow["status"]["id"], 7,
        "16 MB of frames in a 1 MB stack: {shallow}"
    );
    assert_eq!(shallow["exit_signal"], 11);
    let roomy = run(json!({"language_id": 50, "stack_limit": 65536, "source_code": deep})).await;
    assert_eq!(roomy["status"]["id"], 3, "{roomy}");
    let (status, escape) = post(
        &node,
        "/submissions",
        json!({"language_id": 71, "source_code": "1",
        "additional_files": b64(&escaping_zip())}),
    )
    .await;
    assert_eq!(status, 422, "{escape}");
    assert!(
        escape["additional_files"][0]
            .as_str()
            .unwrap()
            .contains("outside the work dir"),
        "{escape}"
    );
}

/// A zip whose one entry climbs out of the work dir.
fn escaping_zip() -> Vec<u8> {
    use std::io::Write;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    out.start_file(
        "../../etc/cron.d/x",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    out.write_all(b"x").unwrap();
    out.finish().unwrap().into_inner()
}

#[tokio::test]
async fn a_cancelled_job_reads_as_an_internal_error() {
    let node = TestNode::start(1).await;
    let (_, created) = post(
        &node,
        "/submissions",
        json!({"source_code": "import time\ntime.sleep(30)", "language_id": 71}),
    )
    .await;
    let token = created["token"].as_str().unwrap().to_string();
    assert!(common::until_running(&node, &token, Duration::from_secs(30)).await);
    let (status, _) = node.delete(&format!("/execution/{token}")).await;
    assert!(status == 200 || status == 202, "{status}");
    let done = finished(&node, &token, "fields=status,message").await;
    assert_eq!(
        done,
        json!({"status": {"id": 13, "description": "Internal Error"}, "message": "cancelled"})
    );
}

#[tokio::test]
async fn the_metadata_endpoints_answer_in_judge0s_shapes() {
    let node = TestNode::start(1).await;
    let (_, about) = get(&node, "/about").await;
    assert_eq!(about["version"], "1.13.1");
    let (_, version) = get(&node, "/version").await;
    assert_eq!(version, "1.13.1");
    let (_, statuses) = get(&node, "/statuses").await;
    assert_eq!(statuses.as_array().unwrap().len(), 14);
    assert_eq!(
        statuses[10],
        json!({"id": 11, "description": "Runtime Error (NZEC)"})
    );
    let (_, config) = get(&node, "/config_info").await;
    assert_eq!(config.as_object().unwrap().len(), 39, "{config}");
    assert_eq!(config["enable_callbacks"], false, "no webhooks configured");
    let (_, languages) = get(&node, "/languages").await;
    let named = |id: u64| languages.as_array().unwrap().iter().any(|l| l["id"] == id);
    assert!(
        [50, 52, 54, 62, 63, 71].into_iter().all(named),
        "{languages}"
    );
    let (_, java) = get(&node, "/languages/62").await;
    assert_eq!(java["source_file"], "Main.java");
    let (status, _) = get(&node, "/languages/9999").await;
    assert_eq!(status, 404);
    let (_, system) = get(&node, "/system_info").await;
    assert!(system["CPU(s)"].as_str().is_some(), "{system}");
    let (_, workers) = get(&node, "/workers").await;
    assert_eq!(workers[0]["available"], 1, "{workers}");
    let (status, _) = call(&node, reqwest::Method::DELETE, "/submissions/x", None).await;
    assert_eq!(status, 403, "delete needs X-Auth-User, as in Judge0");
}

#[tokio::test]
async fn auth_tokens_and_users_map_to_api_keys() {
    let node = keyed_node().await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/judge0{path}", node.url);
    let status = |r: reqwest::Response| r.status().as_u16();
    let none = client.get(url("/languages")).send().await.unwrap();
    assert_eq!(status(none), 401);
    let token = client
        .get(url("/languages"))
        .header("X-Auth-Token", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(status(token), 200);
    let bearer = client
        .get(url("/about"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(status(bearer), 200);
    let wrong = client
        .post(url("/authenticate"))
        .header("X-Auth-Token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let user = |value: &'static str| {
        client
            .post(url("/authorize"))
            .header("X-Auth-Token", KEY)
            .header("X-Auth-User", value)
            .send()
    };
    assert_eq!(status(user(KEY).await.unwrap()), 200);
    assert_eq!(status(user("nope").await.unwrap()), 403);
}

#[tokio::test]
async fn a_callback_url_gets_judge0s_put_with_the_default_fields_in_base64() {
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = bodies.clone();
    let receiver = warp::put().and(warp::body::json()).map(move |body: Value| {
        kept.lock().unwrap().push(body);
        warp::reply()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(warp::serve(receiver).incoming(listener).run());
    let mut config = test_config(1);
    config.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    config.webhooks.allow_private_addresses = true;
    config.webhooks.secret = Some("judge0-callback-secret".into());
    let node = TestNode::with_config(config).await;
    let (status, created) = post(
        &node,
        "/submissions",
        json!({"source_code": "print('called back')",
        "language_id": 71, "callback_url": format!("http://{addr}/judge0-done")}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let arrived = eventually(Duration::from_secs(60), || async {
        !bodies.lock().unwrap().is_empty()
    })
    .await;
    assert!(arrived, "no PUT came");
    let body = bodies.lock().unwrap()[0].clone();
    assert_eq!(keys(&body), DEFAULT_FIELDS);
    assert_eq!(body["token"], created["token"]);
    assert_eq!(body["stdout"], b64(b"called back\n"));
    assert_eq!(body["status"]["id"], 3);
    let (status, refused) = post(
        &node,
        "/submissions",
        json!({"source_code": "1", "language_id": 71,
        "callback_url": "http://judge0.example.com/x"}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused["callback_url"].is_array(), "{refused}");
    server.abort();
}

#[tokio::test]
async fn a_port_of_its_own_serves_judge0s_paths_at_its_root() {
    let mut config = test_config(1);
    config.judge0.listen = Some("127.0.0.1:0".parse().unwrap());
    let node = TestNode::with_config(config).await;
    let judge0 = node.node().judge0_addr.expect("a Judge0 listener");
    let root = format!("http://{judge0}");
    let client = reqwest::Client::new();
    let about: Value = client
        .get(format!("{root}/about"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(about["version"], "1.13.1");
    let done: Value = client
        .post(format!("{root}/submissions?wait=true&fields=stdout"))
        .json(&json!({"source_code": "print(6 * 7)", "language_id": 71}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done, json!({"stdout": "42\n"}));
    let rest = client.post(format!("{root}/execute")).send().await.unwrap();
    assert_eq!(rest.status(), 404, "only the Judge0 API there");
}
