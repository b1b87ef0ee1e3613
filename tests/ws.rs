//! Interactive programs: `GET /execute/ws`. The client sends the request, then stdin chunks,
//! eof and signals while the program runs; the server sends its output as it comes and then
//! the final record. Bad frames close the session with a code that says why, and a client
//! that leaves takes its job with it.

mod common;

use std::time::Duration;

use codebeaker::node::Role;
use common::{final_record, test_config, until_running, NatsServer, TestNode};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the server said next: a JSON frame, or its close (code and reason).
#[derive(Debug)]
enum Heard {
    Frame(Value),
    Closed(u16, String),
}

async fn connect(node: &TestNode) -> Socket {
    let url = format!("{}/execute/ws", node.url.replacen("http", "ws", 1));
    let (socket, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), 101);
    socket
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

async fn hear(socket: &mut Socket) -> Heard {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(60), socket.next());
        match next.await.expect("the server speaks within a minute") {
            Some(Ok(Message::Text(text))) => {
                return Heard::Frame(serde_json::from_str(&text).unwrap())
            }
            Some(Ok(Message::Close(Some(close)))) => {
                return Heard::Closed(u16::from(close.code), close.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None => return Heard::Closed(1005, String::new()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the session broke: {e}"),
        }
    }
}

/// Frames until the next one of type `kind` (returned last), all within a minute.
async fn until(socket: &mut Socket, kind: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        match hear(socket).await {
            Heard::Frame(frame) => {
                let last = frame["type"] == kind;
                frames.push(frame);
                if last {
                    return frames;
                }
            }
            closed => panic!("closed before a `{kind}` frame: {closed:?} after {frames:?}"),
        }
    }
}

/// The frames of a session the server refuses, then its close code and error code.
async fn refused(socket: &mut Socket) -> (u16, String) {
    refused_after(socket).await.0
}

/// As [`refused`], with the execution the session had started, if it got that far.
async fn refused_after(socket: &mut Socket) -> ((u16, String), Option<String>) {
    let mut started = None;
    loop {
        match hear(socket).await {
            Heard::Frame(frame) if frame["type"] == "error" => {
                let error = frame["error"]["code"].as_str().unwrap().to_string();
                let Heard::Closed(code, reason) = hear(socket).await else {
                    panic!("an error frame is followed by the close")
                };
                // The close repeats the message, cut to fit a close frame.
                let message = frame["error"]["message"].as_str().unwrap();
                assert!(
                    !reason.is_empty() && message.starts_with(&reason),
                    "{reason} / {message}"
                );
                return ((code, error), started);
            }
            Heard::Frame(frame) if frame["type"] == "accepted" => {
                started = frame["execution_id"].as_str().map(str::to_string);
            }
            Heard::Frame(_) => continue,
            closed => panic!("closed with no error frame: {closed:?}"),
        }
    }
}

/// Frames until the stdout they carry adds up to `text`: chunks split where they split.
async fn until_stdout(socket: &mut Socket, text: &str) -> Vec<Value> {
    let mut frames = Vec::new();
    while stdout_of(&frames).len() < text.len() {
        frames.extend(until(socket, "stdout").await);
    }
    assert_eq!(stdout_of(&frames), text, "{frames:?}");
    frames
}

fn stdout_of(frames: &[Value]) -> String {
    frames
        .iter()
        .filter(|f| f["type"] == "stdout")
        .map(|f| f["data"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_program_on_a_worker_node_answers_each_line_as_it_is_sent() {
    let nats = NatsServer::start();
    let api = TestNode::on(&nats, Role::Api, 0).await;
    let worker = TestNode::on(&nats, Role::Worker, 1).await;

    let code = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\nprint('bye')";
    let mut socket = connect(&api).await;
    send(&mut socket, json!({"language": "python", "code": code})).await;
    // Input sent before the job runs is held for it, not lost.
    send(&mut socket, json!({"type": "stdin", "data": "hello\n"})).await;
    let first = until_stdout(&mut socket, "HELLO\n").await;
    // The first frame names the execution, as `POST /execute/async` would.
    assert_eq!(first[0]["type"], "accepted", "{first:?}");
    assert!(first[0]["execution_id"].is_string(), "{first:?}");
    assert!(
        first
            .iter()
            .any(|f| f == &json!({"type": "status", "status": "running"})),
        "{first:?}"
    );
    // The answer to the first line came before the second was sent: the program is live.
    send(&mut socket, json!({"type": "stdin", "data": "wörld\n"})).await;
    until_stdout(&mut socket, "WÖRLD\n").await;
    send(&mut socket, json!({"type": "eof"})).await;
    let rest = until(&mut socket, "final").await;
    let record = &rest.last().unwrap()["record"];
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(record["exit_code"], 0);
    assert_eq!(record["stdout"], "HELLO\nWÖRLD\nbye\n");
    assert_eq!(record["node"], worker.node().node_id(), "{record}");
    assert!(matches!(hear(&mut socket).await, Heard::Closed(1000, _)));
    // The record stays, as any execution's does.
    let id = record["execution_id"].as_str().unwrap();
    assert_eq!(first[0]["execution_id"], id);
    assert_eq!(
        &final_record(&api, id, Duration::from_secs(5)).await,
        record
    );
    worker.shutdown().await;
    api.shutdown().await;
}

#[tokio::test]
async fn a_signal_from_the_client_reaches_the_program() {
    let node = TestNode::start(1).await;
    let code = "import signal, sys, time\n\
        signal.signal(signal.SIGINT, lambda *_: (print('interrupted', flush=True), sys.exit(3)))\n\
        print('waiting', flush=True)\ntime.sleep(30)";
    let mut socket = connect(&node).await;
    send(&mut socket, json!({"language": "python", "code": code})).await;
    until_stdout(&mut socket, "waiting\n").await;
    send(&mut socket, json!({"type": "signal", "signal": "SIGINT"})).await;
    let frames = until(&mut socket, "final").await;
    let record = &frames.last().unwrap()["record"];
    assert_eq!(record["stdout"], "waiting\ninterrupted\n", "{record}");
    assert_eq!(
        (&record["status"], &record["exit_code"]),
        (&json!("completed"), &json!(3))
    );

    // SIGKILL cannot be caught: the record names it.
    let mut socket = connect(&node).await;
    send(&mut socket, json!({"language": "python", "code": code})).await;
    until_stdout(&mut socket, "waiting\n").await;
    send(&mut socket, json!({"type": "signal", "signal": "SIGKILL"})).await;
    let frames = until(&mut socket, "final").await;
    let record = &frames.last().unwrap()["record"];
    assert_eq!(record["signal"], "SIGKILL", "{record}");
    assert!(record["duration_ms"].as_u64().unwrap() < 20_000, "{record}");
    node.shutdown().await;
}

#[tokio::test]
async fn bad_frames_and_bad_requests_close_the_session_with_a_code_that_says_why() {
    let node = TestNode::start(1).await;
    let sleeper = json!({"language": "python", "code": "print('up', flush=True)\nimport time\ntime.sleep(30)"});
    let cases: Vec<(Vec<Message>, u16, &str)> = vec![
        (vec![Message::text("{not json")], 4400, "invalid_json"),
        (vec![Message::text(json!({"language": "cobra", "code": "x"}).to_string())], 4400, "unknown_language"),
        (
            vec![Message::text(
                json!({"language": "python", "code": "x", "tests": [{"stdin": "", "expected_output": ""}]})
                    .to_string(),
            )],
            4422,
            "invalid_field",
        ),
        (vec![Message::binary(b"\x00\x01".to_vec())], 1003, "binary_frame"),
        (
            vec![Message::text(sleeper.to_string()), Message::text(r#"{"type": "dance"}"#)],
            4400,
            "invalid_frame",
        ),
        (
            vec![Message::text(sleeper.to_string()), Message::text(r#"{"type": "signal", "signal": "SIGFOO"}"#)],
            4400,
            "invalid_frame",
        ),
    ];
    let mut started = Vec::new();
    for (frames, code, error) in cases {
        let mut socket = connect(&node).await;
        for frame in frames.clone() {
            socket.send(frame).await.unwrap();
        }
        let (refusal, execution) = refused_after(&mut socket).await;
        assert_eq!(refusal, (code, error.to_string()), "{frames:?}");
        started.extend(execution);
    }
    // The two sessions refused after their request had started a job cancelled it.
    assert_eq!(started.len(), 2, "{started:?}");
    for id in &started {
        let record = final_record(&node, id, Duration::from_secs(30)).await;
        assert_eq!(record["status"], "cancelled", "{record}");
    }
    // The sessions that had started a job took it with them.
    assert!(
        common::eventually(Duration::from_secs(30), || async {
            node.leftover_containers().await.is_empty()
        })
        .await,
        "a refused session's job is still running"
    );
    node.shutdown().await;
}

#[tokio::test]
async fn stdin_past_the_request_cap_is_refused_and_the_job_ends() {
    let mut config = test_config(1);
    config.limits.max_body_bytes = codebeaker::sandbox::limits::ByteSize::kib(64);
    let node = TestNode::with_config(config).await;
    let mut socket = connect(&node).await;
    let code = "import sys\nfor line in sys.stdin: pass";
    send(&mut socket, json!({"language": "python", "code": code})).await;
    let chunk = "x".repeat(40 * 1024);
    send(&mut socket, json!({"type": "stdin", "data": chunk})).await;
    send(&mut socket, json!({"type": "stdin", "data": chunk})).await;
    assert_eq!(refused(&mut socket).await, (4413, "too_large".to_string()));
    // One frame over the cap by itself is refused as such before it is read.
    let mut socket = connect(&node).await;
    send(
        &mut socket,
        json!({"language": "python", "code": "x" .repeat(70 * 1024)}),
    )
    .await;
    assert_eq!(refused(&mut socket).await, (1009, "too_large".to_string()));
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_takes_its_job_with_it() {
    let node = TestNode::start(1).await;
    let mut socket = connect(&node).await;
    let code = "print('up', flush=True)\nimport time\ntime.sleep(60)";
    send(&mut socket, json!({"language": "python", "code": code})).await;
    let frames = until_stdout(&mut socket, "up\n").await;
    let id = frames[0]["execution_id"].as_str().unwrap().to_string();
    assert!(until_running(&node, &id, Duration::from_secs(5)).await);
    drop(socket);
    let record = final_record(&node, &id, Duration::from_secs(30)).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    node.shutdown().await;
}

#[tokio::test]
async fn a_plain_get_is_told_to_upgrade() {
    let node = TestNode::start(0).await;
    let (status, body) = node.get("/execute/ws").await;
    assert_eq!(status, 426, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "upgrade_required");
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_sends_its_request_is_closed_after_ten_seconds() {
    let node = TestNode::start(0).await;
    let mut socket = connect(&node).await;
    let started = std::time::Instant::now();
    assert_eq!(
        refused(&mut socket).await,
        (4408, "request_timeout".to_string())
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    node.shutdown().await;
}
