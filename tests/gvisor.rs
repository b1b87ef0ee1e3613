//! The runsc (gVisor) runtime, chosen per deployment: jobs run in gVisor's own kernel.

mod common;

use common::{test_config, TestNode};
use serde_json::json;

#[tokio::test]
async fn a_deployment_on_runsc_runs_jobs_inside_gvisor() {
    let mut config = test_config(1);
    config.docker.runtime = Some("runsc".into());
    let node = TestNode::with_config(config).await;
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let r = node
        .run(json!({"language": "python", "code": "import os, sys\nprint(os.uname().release)\nprint(sys.stdin.read())", "stdin": "in gvisor"}))
        .await;
    assert_eq!(r["status"], "completed", "{r}");
    let out = r["stdout"].as_str().unwrap();
    let (kernel, rest) = out.split_once('\n').unwrap();
    assert_ne!(kernel, host_kernel.trim(), "the job saw the host kernel");
    assert_eq!(rest, "in gvisor\n");
    // gVisor shows no cgroup files: the measures it cannot take are null, not zero.
    assert_eq!(r["memory_peak_bytes"], serde_json::Value::Null);

    let r = node
        .run(json!({"language": "python", "code": "while True: pass", "timeout": 1}))
        .await;
    assert_eq!(r["status"], "time_limit_exceeded");
    assert!(node.leftover_containers().await.is_empty());
}
