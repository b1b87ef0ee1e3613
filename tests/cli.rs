//! `codebeaker run`: test cases from a file (`--tests`) and output as it comes (`--stream`),
//! against a real node.

mod common;

use std::process::Stdio;

use common::TestNode;
use tokio::io::{AsyncBufReadExt, BufReader};

fn cli() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_codebeaker"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[tokio::test]
async fn tests_from_a_file_print_a_verdict_per_case_and_fail_on_a_wrong_answer() {
    let node = TestNode::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("sum.py");
    std::fs::write(&program, "a, b = map(int, input().split())\nprint(a + b)\n").unwrap();
    let cases = dir.path().join("cases.json");
    let write_cases = |json: &str| std::fs::write(&cases, json).unwrap();
    write_cases(
        r#"[{"stdin": "1 2\n", "expected_output": "3"}, {"stdin": "2 2\n", "expected_output": "5"}]"#,
    );
    let run = || {
        cli()
            .arg("run")
            .arg(&program)
            .arg("--tests")
            .arg(&cases)
            .args(["--url", &node.url])
            .output()
    };
    let output = run().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("case  1: accepted"), "{text}");
    assert!(lines[1].starts_with("case  2: wrong_answer"), "{text}");
    assert_eq!(lines[2], "verdict: wrong_answer (1 of 2 accepted)");
    assert_eq!(output.status.code(), Some(1));

    write_cases(r#"[{"stdin": "1 2", "expected_output": "3"}]"#);
    let output = run().await.unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    write_cases(r#"{"stdin": "not a list"}"#);
    let output = run().await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("test cases are a JSON list"), "{said}");
    node.shutdown().await;
}

#[tokio::test]
async fn stream_prints_each_line_while_the_program_still_runs() {
    let node = TestNode::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("tick.py");
    std::fs::write(
        &program,
        "import time\nprint('tick 0', flush=True)\ntime.sleep(2)\nprint('tick 1')\n",
    )
    .unwrap();
    let mut child = cli()
        .arg("run")
        .arg(&program)
        .args(["--stream", "--url", &node.url])
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("tick 0"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only at the end"
    );
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("tick 1"));
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "nothing printed twice"
    );
    assert_eq!(child.wait().await.unwrap().code(), Some(0));

    // The events are SSE: over NATS, --stream says so.
    let output = cli()
        .arg("run")
        .arg(&program)
        .args(["--stream", "--nats", &node.nats_url()])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("needs the REST API"), "{said}");
    node.shutdown().await;
}
