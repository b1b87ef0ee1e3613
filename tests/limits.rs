//! Every limit, hit by hostile code, with the exact status asserted.

mod common;

use std::time::{Duration, Instant};

use common::TestNode;
use serde_json::json;

#[tokio::test]
async fn an_infinite_loop_is_time_limit_exceeded_within_timeout_plus_2s() {
    let node = TestNode::start(1).await;
    let start = Instant::now();
    let r = node
        .run(json!({"language": "python", "code": "while True: pass", "timeout": 2}))
        .await;
    let elapsed = start.elapsed();
    assert_eq!(r["status"], "time_limit_exceeded");
    assert_eq!(r["exit_code"], serde_json::Value::Null);
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    assert!(r["duration_ms"].as_u64().unwrap() >= 2000);
    assert!(
        node.leftover_containers().await.is_empty(),
        "the killed container is removed"
    );
}

#[tokio::test]
async fn sleeping_forever_is_time_limit_exceeded() {
    let node = TestNode::start(1).await;
    let r = node
        .run(json!({"language": "python", "code": "import time\nprint('zz', flush=True)\ntime.sleep(10**6)", "timeout": 1}))
        .await;
    assert_eq!(r["status"], "time_limit_exceeded");
    assert_eq!(r["stdout"], "zz\n", "output before the deadline is kept");
}

#[tokio::test]
async fn allocating_1gib_under_128m_is_memory_limit_exceeded() {
    let node = TestNode::start(1).await;
    let r = node
        .run(json!({
            "language": "python",
            "code": "block = bytearray(1 << 30)\nfor i in range(0, len(block), 4096): block[i] = 1\nprint('survived')",
            "memory_limit": "128m",
        }))
        .await;
    assert_eq!(r["status"], "memory_limit_exceeded", "{r}");
    assert_eq!(r["stdout"], "");
    // Under gVisor the whole sandbox is what the kernel kills: no signal, no peak to report.
    if !common::gvisor() {
        assert_eq!(r["signal"], "SIGKILL");
        let peak = r["memory_peak_bytes"].as_u64().unwrap();
        assert!(peak <= 128 << 20 && peak > 100 << 20, "peak {peak}");
    }
}

#[tokio::test]
async fn a_fork_bomb_hits_the_pids_limit_and_the_next_job_succeeds() {
    let node = TestNode::start(1).await;
    let bomb =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass";
    let r = node
        .run(json!({"language": "python", "code": bomb, "timeout": 2}))
        .await;
    // gVisor charges each forked interpreter's pages in full, so the bomb meets the memory
    // limit before the deadline; under runc the pages are shared and the deadline comes first.
    let expected = if common::gvisor() {
        "memory_limit_exceeded"
    } else {
        "time_limit_exceeded"
    };
    assert_eq!(r["status"], expected, "{r}");
    let next = node.python("print('still here')").await;
    assert_eq!(next["status"], "completed");
    assert_eq!(next["stdout"], "still here\n");
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn forks_past_the_pids_limit_fail_inside_the_job() {
    let node = TestNode::start(1).await;
    let code = "import os, time\nn = 0\ntry:\n    while n < 1000:\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('fork failed after', n, e.errno)";
    let r = node.python(code).await;
    assert_eq!(r["status"], "completed", "{r}");
    let out = r["stdout"].as_str().unwrap();
    assert!(out.starts_with("fork failed after"), "{out}");
    let forked: u32 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(forked < 64, "pids limit is 64, forked {forked}");
}

#[tokio::test]
async fn printing_forever_is_output_limit_exceeded_with_exactly_the_cap() {
    let node = TestNode::start(1).await;
    let r = node.python("while True:\n    print('x' * 1000)").await;
    assert_eq!(r["status"], "output_limit_exceeded");
    assert_eq!(r["stdout_truncated"], true);
    assert_eq!(r["stderr_truncated"], false);
    assert_eq!(r["stdout"].as_str().unwrap().len(), 64 * 1024);
    assert!(node.leftover_containers().await.is_empty());
}

#[tokio::test]
async fn flooding_stderr_is_output_limit_exceeded_with_exactly_the_cap() {
    let node = TestNode::start(1).await;
    let r = node
        .python("import sys\nwhile True:\n    sys.stderr.write('e' * 4096)")
        .await;
    assert_eq!(r["status"], "output_limit_exceeded");
    assert_eq!(r["stderr_truncated"], true);
    assert_eq!(r["stderr"].as_str().unwrap(), "e".repeat(64 * 1024));
}

#[tokio::test]
async fn output_just_under_the_cap_is_complete() {
    let node = TestNode::start(1).await;
    let r = node
        .python("import sys\nsys.stdout.write('o' * 65536)\nsys.stderr.write('e' * 65536)")
        .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["stdout"].as_str().unwrap().len(), 65536);
    assert_eq!(r["stderr"].as_str().unwrap().len(), 65536);
    assert_eq!(r["stdout_truncated"], false);
    assert_eq!(r["stderr_truncated"], false);
}

#[tokio::test]
async fn recursing_past_the_stack_limit_is_a_segfault_and_within_it_runs() {
    let node = TestNode::start(1).await;
    // 16 000 frames of about 1 KiB: some 16 MiB of stack.
    let deep = "#include <stdio.h>\n\
                int f(int n){volatile char pad[1024]; pad[0]=n; return n ? f(n-1)+pad[0] : 0;}\n\
                int main(){printf(\"%d\\n\", f(16000)); return 0;}";
    let r = node
        .run(json!({"language": "c", "code": deep, "stack_limit": "1m"}))
        .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["signal"], "SIGSEGV", "{r}");
    let r = node
        .run(json!({"language": "c", "code": deep, "stack_limit": "64m"}))
        .await;
    assert_eq!(
        (r["status"].as_str(), r["exit_code"].as_i64()),
        (Some("completed"), Some(0)),
        "{r}"
    );
}
