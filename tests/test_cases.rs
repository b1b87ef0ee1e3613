//! Test cases: a request's `tests` compile once and run once per case, each case in a fresh
//! sandbox with its own verdict; a compile error runs none; bad cases are refused; a cancel
//! stops the cases still to come.

mod common;

use std::time::Duration;

use common::{final_record, test_config, until_running, TestNode};
use serde_json::{json, Value};

/// Fails a case (prints `carried over`) if anything of an earlier case is still there.
const PYTHON: &str = r#"
import os, sys
if os.path.exists('marker') or os.path.exists('/tmp/marker'):
    print('carried over'); sys.exit(0)
open('marker', 'w').write('x'); open('/tmp/marker', 'w').write('x')
line = input()
if line == 'loop':
    while True: pass
if line == 'crash':
    sys.exit(3)
print(int(line) * 2, *sys.argv[1:])
"#;

fn verdicts(record: &Value) -> Vec<&str> {
    record["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("no tests in {record}"))
        .iter()
        .map(|t| t["verdict"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn each_case_runs_in_a_fresh_sandbox_and_gets_its_verdict() {
    let node = TestNode::start(1).await;
    let record = node
        .run(
            json!({"language": "python", "code": PYTHON, "args": ["x"], "tests": [
                {"stdin": "1", "expected_output": "2 x"},
                {"stdin": "2", "expected_output": "5 x"},
                {"stdin": "3", "expected_output": "6 a b  \n\n", "args": ["a", "b"]},
                {"stdin": "loop", "expected_output": "", "timeout": 1},
                {"stdin": "crash", "expected_output": ""},
            ]}),
        )
        .await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(
        verdicts(&record),
        [
            "accepted",
            "wrong_answer",
            "accepted",
            "time_limit_exceeded",
            "runtime_error"
        ]
    );
    assert_eq!(record["verdict"], "wrong_answer");
    let tests = record["tests"].as_array().unwrap();
    assert_eq!(tests[1]["stdout"], "4 x\n");
    assert_eq!(tests[2]["stdout"], "6 a b\n");
    assert_eq!(tests[3]["status"], "time_limit_exceeded");
    assert!(tests[3]["duration_ms"].as_u64().unwrap() >= 1000);
    assert_eq!(tests[4]["exit_code"], 3);
    let total: u64 = tests
        .iter()
        .map(|t| t["duration_ms"].as_u64().unwrap())
        .sum();
    assert_eq!(record["duration_ms"], total);
    for test in tests {
        assert!(
            test["memory_peak_bytes"].is_u64() || common::gvisor(),
            "{test}"
        );
    }
    assert!(node.leftover_containers().await.is_empty());
}

const CPP: &str = r#"
#include <cstdio>
#include <fstream>
#include <iostream>
int main() {
    if (std::ifstream("marker")) { std::puts("carried over"); return 0; }
    std::ofstream("marker") << "x";
    double x; std::cin >> x;
    std::printf("%.5f\n", x / 3);
}
"#;

#[tokio::test]
async fn a_compiled_program_compiles_once_and_runs_every_case_from_it() {
    let node = TestNode::start(1).await;
    let record = node
        .run(
            json!({"language": "cpp", "code": CPP, "compare": {"float": 0.001}, "tests": [
                {"stdin": "1", "expected_output": "0.3333"},
                {"stdin": "2", "expected_output": "0.6667"},
                {"stdin": "3", "expected_output": "2"},
            ]}),
        )
        .await;
    assert_eq!(record["status"], "completed", "{record}");
    assert_eq!(verdicts(&record), ["accepted", "accepted", "wrong_answer"]);
    assert_eq!(record["verdict"], "wrong_answer");
    assert_eq!(record["compile"]["exit_code"], 0, "{record}");
    assert_eq!(record["tests"][2]["stdout"], "1.00000\n");

    let broken = node
        .run(
            json!({"language": "cpp", "code": "int main() { return x; }", "tests": [
                {"stdin": "", "expected_output": ""}, {"stdin": "", "expected_output": ""},
            ]}),
        )
        .await;
    assert_eq!(broken["status"], "compile_error", "{broken}");
    assert_eq!(broken["verdict"], "compile_error");
    assert_eq!(
        broken["tests"],
        json!([]),
        "no case runs after a compile error"
    );
    assert!(broken["compile"]["stderr"]
        .as_str()
        .unwrap()
        .contains("was not declared"));
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn bad_cases_are_refused_with_the_case_named() {
    let mut config = test_config(1);
    config.limits.max_tests = 2;
    let node = TestNode::with_config(config).await;
    let case = json!({"stdin": "", "expected_output": ""});
    let cases = |tests: Value| json!({"language": "python", "code": "print(1)", "tests": tests});

    let (status, body) = node.post(cases(json!([case, case, case]))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "tests");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2 test cases"));

    let slow = json!({"stdin": "", "expected_output": "", "timeout": 1e6});
    let (status, body) = node.post(cases(json!([case, slow]))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "limit_out_of_range");
    assert_eq!(body["error"]["field"], "timeout");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tests[1]: timeout"));

    let mut with_stdin = cases(json!([case]));
    with_stdin["stdin"] = json!("shared");
    let (status, body) = node.post(with_stdin).await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("stdin")));

    let mut negative = cases(json!([case]));
    negative["compare"] = json!({"float": -1});
    let (status, body) = node.post(negative).await;
    assert_eq!((status, &body["error"]["field"]), (422, &json!("compare")));

    let mut unknown = cases(json!([case]));
    unknown["compare"] = json!("fuzzy");
    let (status, body) = node.post(unknown).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_json"))
    );

    let big = json!({"stdin": "", "expected_output": "x".repeat(1024 * 1024 + 1)});
    let (status, body) = node.post(cases(json!([big]))).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["field"], "expected_output");
}

#[tokio::test]
async fn a_cancel_stops_the_cases_still_to_come() {
    let node = TestNode::start(1).await;
    let sleepy = json!({"stdin": "", "expected_output": "", "timeout": 10});
    let (status, accepted) = node
        .post_to(
            "/execute/async",
            json!({"language": "python", "code": "import time; time.sleep(5)",
                   "tests": vec![sleepy; 5]}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["execution_id"].as_str().unwrap();
    assert!(until_running(&node, id, Duration::from_secs(20)).await);
    let (status, body) = node.delete(&format!("/execution/{id}")).await;
    assert!(status == 200 || status == 202, "{status} {body}");
    let record = final_record(&node, id, Duration::from_secs(20)).await;
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(record["verdict"], "cancelled");
    assert_eq!(verdicts(&record), ["cancelled"]);
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn a_compiled_work_dir_over_its_cap_runs_no_case() {
    let node = TestNode::start(1).await;
    // 40 MiB of initialised data makes a 40 MiB binary: over the 32 MiB a cell sends back.
    let code = "static char big[40 << 20] = {1}; int main(int argc, char **argv) { return big[argc << 20]; }";
    let record = node
        .run(
            json!({"language": "c", "code": code, "file_size_limit": "48m", "tests": [
                {"stdin": "", "expected_output": ""},
            ]}),
        )
        .await;
    assert_eq!(record["status"], "internal_error", "{record}");
    assert_eq!(record["verdict"], "internal_error");
    assert_eq!(record["tests"], json!([]));
    let error = record["error"].as_str().unwrap();
    assert!(error.contains("the work dir is over 32 MiB"), "{error}");
    assert!(node.leftover_containers().await.is_empty());
}
