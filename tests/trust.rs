//! Trust boundaries: what a worker does with job messages it did not get from our API.

mod common;

use std::time::Duration;

use codebeaker::model::{Priority, Submission};
use codebeaker::sandbox::limits::{ByteSize, Requested};
use common::{eventually, final_record, test_config, TestNode};
use serde::Serialize;
use serde_json::Value;

/// A job message as a forger would write it: a valid submission, plus the fields an older
/// message format carried and a worker must not take from the wire.
#[derive(Serialize)]
struct Forged {
    #[serde(flatten)]
    submission: Submission,
    image: String,
    runtime: String,
}

fn submission(language: &str, code: &str, limits: Requested) -> Submission {
    Submission {
        execution_id: uuid::Uuid::new_v4(),
        language: language.into(),
        code: code.into(),
        stdin: String::new(),
        limits,
        priority: Priority::Normal,
        files: vec![],
        args: vec![],
        tests: vec![],
        compare: Default::default(),
        interactive: false,
        callback_url: None,
        batch_id: None,
        stderr_to_stdout: false,
        compiler_options: None,
        echo: None,
        created_at: chrono::Utc::now(),
    }
}

/// Publishes straight onto the job stream, as anyone with publish rights there could.
async fn publish(node: &TestNode, forged: &Forged) {
    let client = async_nats::connect(node.nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let payload = rmp_serde::to_vec_named(forged).unwrap();
    js.publish("codebeaker.jobs.normal", payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn record_of(node: &TestNode, id: &uuid::Uuid) -> Value {
    let path = format!("/execution/{id}");
    let written = eventually(Duration::from_secs(60), || async {
        node.get(&path).await.0 == 200
    })
    .await;
    assert!(written, "no record for the forged job {id}");
    final_record(node, &id.to_string(), Duration::from_secs(60)).await
}

#[tokio::test]
async fn a_forged_job_message_runs_only_as_the_workers_own_tables_say() {
    let mut config = test_config(2);
    config.docker.runtime = Some("runsc".into());
    config.limits.timeout.default = 1.0;
    config.limits.timeout.max = 2.0;
    config.limits.memory.max = ByteSize::mib(64);
    config.limits.memory.default = ByteSize::mib(64);
    let node = TestNode::with_config(config).await;
    let over_the_maxima = Requested {
        timeout: Some(600.0),
        cpu_time: Some(600.0),
        memory: Some(ByteSize(8 << 30)),
        pids: Some(100_000),
        output: Some(ByteSize(1 << 30)),
        file_size: Some(ByteSize(1 << 40)),
        stack: Some(ByteSize(1 << 40)),
    };
    let forge = |code: &str| Forged {
        submission: submission("python", code, over_the_maxima.clone()),
        image: "codebeaker/ruby:latest".into(),
        runtime: "runc".into(),
    };
    let probe = forge(
        "import os, resource, sys\n\
         print(os.uname().release)\n\
         print(resource.getrlimit(resource.RLIMIT_FSIZE)[0])\n\
         print(sys.version_info[0])\n\
         print(resource.getrlimit(resource.RLIMIT_STACK)[0])",
    );
    let sleeper = forge("import time\ntime.sleep(30)");
    let hog = forge("x = bytearray(300 * 1024 * 1024)\nprint(len(x))");
    for forged in [&probe, &sleeper, &hog] {
        publish(&node, forged).await;
    }

    let r = record_of(&node, &probe.submission.execution_id).await;
    assert_eq!(r["status"], "completed", "{r}");
    let out = r["stdout"].as_str().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(
        lines[0],
        host_kernel.trim(),
        "ran under runc, not gVisor: {out}"
    );
    assert_eq!(
        lines[1],
        (64u64 << 20).to_string(),
        "file size not clamped: {out}"
    );
    assert_eq!(lines[2], "3", "not the python image: {out}");
    assert_eq!(
        lines[3],
        (128u64 << 20).to_string(),
        "stack not clamped: {out}"
    );
    assert_eq!(r["language"], "python");

    let r = record_of(&node, &sleeper.submission.execution_id).await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    assert!(r["duration_ms"].as_u64().unwrap() < 10_000, "{r}");

    let r = record_of(&node, &hog.submission.execution_id).await;
    assert_eq!(r["status"], "memory_limit_exceeded", "{r}");
}

#[tokio::test]
async fn a_job_message_naming_an_unknown_language_ends_internal_error() {
    let node = TestNode::start(1).await;
    let forged = Forged {
        submission: submission("brainfuck", "+.", Requested::default()),
        image: "codebeaker/python:latest".into(),
        runtime: "runc".into(),
    };
    publish(&node, &forged).await;
    let r = record_of(&node, &forged.submission.execution_id).await;
    assert_eq!(r["status"], "internal_error", "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("refused the job message") && error.contains("unknown language `brainfuck`"),
        "{error}"
    );
    assert!(node.leftover_containers().await.is_empty());
}
