//! `codebeaker bench` as a smoke test: every workload runs against a real node and the JSON
//! has a row for each. How fast is not checked here (that is what the bench is for).

mod common;

use std::process::Command;

use common::TestNode;

#[tokio::test]
async fn the_bench_runs_every_workload_and_prints_json() {
    let node = TestNode::start(2).await;
    let nats = node.nats.as_ref().unwrap().url.clone();
    let url = node.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_codebeaker"))
            .args(["bench", "--url", &url, "--nats", &nats, "--runs", "3"])
            .args([
                "--pause-ms",
                "20",
                "--async-jobs",
                "6",
                "--clients",
                "2",
                "--test-cases",
                "3",
                "--json",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for expected in [
        "bare python3 process",
        "docker run --rm (same hardening)",
        "POST /execute print(1), back to back",
        "  of which enqueue-to-start (records)",
        "  of which the program in its container",
        "POST /execute print(1), 20 ms apart",
        "NATS codebeaker.execute print(1), back to back",
        "GET /execution/{id}, a finished record",
        "POST /judge0/submissions?wait=true print(1)",
        "POST /api/v2/execute print(1) (Piston)",
        "POST /mcp tools/call execute print(1)",
        "async print(1): 6 jobs from 2 clients, created to finished",
        "C++, 3 test cases in one request",
        "C++, the same 3 inputs as separate requests",
    ] {
        assert!(
            names.contains(&expected),
            "no row {expected:?} in {names:?}"
        );
    }
    for row in &rows {
        assert!(row["p50_ms"].as_f64().unwrap() >= 0.0, "{row}");
        assert!(row["vs_docker_run"].as_f64().is_some(), "{row}");
    }
    let throughput = rows
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with("async"))
        .unwrap();
    assert!(throughput["per_second"].as_f64().unwrap() > 0.0);
}
