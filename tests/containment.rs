//! What a job can and cannot reach, checked from inside the job; and that nothing outlives it.

mod common;

use std::time::Duration;

use codebeaker::config::Config;
use codebeaker::sandbox::Sandbox;
use common::{eventually, test_config, TestNode};
use serde_json::json;

#[tokio::test]
async fn the_network_is_unreachable() {
    let node = TestNode::start(1).await;
    let port = node.node().addr.port();
    let code = format!(
        "import os, socket\n\
         print(sorted(os.listdir('/sys/class/net')))\n\
         s = socket.socket()\n\
         s.settimeout(3)\n\
         try:\n    s.connect(('127.0.0.1', {port}))\n    print('connected')\n\
         except OSError as e:\n    print('refused', e.errno)"
    );
    let r = node.python(&code).await;
    assert_eq!(r["status"], "completed");
    // Only a loopback device, and the node's API port (on the host's loopback) is not there.
    assert_eq!(r["stdout"], "['lo']\nrefused 111\n");
}

#[tokio::test]
async fn writing_outside_the_tmpfs_fails() {
    let node = TestNode::start(1).await;
    let code = "import errno\n\
        for path in ['/etc/passwd', '/usr/x', '/x', '/work/ok', '/tmp/ok']:\n\
        \x20   try:\n\
        \x20       open(path, 'a').write('x')\n\
        \x20       print(path, 'written')\n\
        \x20   except OSError as e:\n\
        \x20       print(path, errno.errorcode[e.errno])";
    let r = node.python(code).await;
    assert_eq!(r["status"], "completed", "{r}");
    // runc checks the read-only mount first (EROFS), gVisor the permissions (EACCES).
    let expected = if common::gvisor() { "EACCES" } else { "EROFS" };
    assert_eq!(
        r["stdout"],
        format!("/etc/passwd EACCES\n/usr/x {expected}\n/x {expected}\n/work/ok written\n/tmp/ok written\n")
    );
}

#[tokio::test]
async fn the_job_runs_unprivileged() {
    let node = TestNode::start(1).await;
    let code = "import ctypes, os\n\
        print(os.getuid(), os.getgid())\n\
        status = dict(l.split(':\\t') for l in open('/proc/self/status').read().splitlines() if ':\\t' in l)\n\
        for key in ['CapEff', 'CapPrm', 'CapBnd']:\n\
        \x20   print(key, status[key].strip())\n\
        print('NoNewPrivs', ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))";
    let r = node.python(code).await;
    assert_eq!(
        r["stdout"],
        "10001 10001\nCapEff 0000000000000000\nCapPrm 0000000000000000\nCapBnd 0000000000000000\nNoNewPrivs 1\n"
    );
}

#[tokio::test]
async fn the_environment_is_the_allow_list() {
    let node = TestNode::start(1).await;
    let r = node
        .python("import os\nprint(sorted(os.environ))\nprint(os.environ['HOSTNAME'])")
        .await;
    // HOSTNAME comes from Docker, PWD from the shell, MPL* and PYTHON* from the image.
    assert_eq!(
        r["stdout"],
        "['HOME', 'HOSTNAME', 'LANG', 'MPLBACKEND', 'MPLCONFIGDIR', 'PATH', 'PWD', 'PYTHONDONTWRITEBYTECODE', 'PYTHONUNBUFFERED', 'TMPDIR']\nsandbox\n"
    );
}

#[tokio::test]
async fn a_background_process_is_gone_when_the_job_ends() {
    let node = TestNode::start(1).await;
    let code = "import subprocess\n\
        subprocess.Popen(['sleep', '987'], start_new_session=True)\n\
        subprocess.Popen(['sh', '-c', 'sleep 986 &'])\n\
        print('started')";
    let r = node.python(code).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["stdout"], "started\n");
    // The job ended when its main program did, not when the sleeps would have.
    assert!(r["duration_ms"].as_u64().unwrap() < 5000);
    assert!(
        node.leftover_containers().await.is_empty(),
        "no labelled container is left"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(
        !ps.contains("sleep 987") && !ps.contains("sleep 986"),
        "{ps}"
    );
}

#[tokio::test]
async fn a_new_node_removes_containers_its_earlier_run_left() {
    let config = test_config(1);
    let sandbox = Sandbox::connect(&config.node_id, &config.docker)
        .await
        .unwrap();
    let label = format!("codebeaker.node={}", config.node_id);
    let created = std::process::Command::new("docker")
        .args([
            "create",
            "--label",
            &label,
            "--network",
            "none",
            "codebeaker/python:latest",
            "true",
        ])
        .output()
        .unwrap();
    assert!(created.status.success());
    assert_eq!(
        sandbox
            .list_labelled("codebeaker.node", &config.node_id)
            .await
            .unwrap()
            .len(),
        1
    );
    let left = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    let node = TestNode::with_config(config).await;
    // That very container: the new node's pools may be creating others at this moment.
    let listed = sandbox
        .list_labelled("codebeaker.node", node.node().node_id())
        .await
        .unwrap();
    let still_there = listed.contains(&left);
    assert!(
        !still_there,
        "the earlier run's container {left} is still there"
    );
}

#[tokio::test]
async fn shutdown_removes_the_containers_of_running_jobs() {
    let node = TestNode::with_config(Config {
        drain_timeout_secs: 1,
        ..test_config(1)
    })
    .await;
    let pending = node.spawn_post(
        json!({"language": "python", "code": "import time; time.sleep(60)", "timeout": 60}),
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            node.containers().await.len() == 1
        })
        .await
    );
    let node_id = node.node().node_id().to_string();
    node.shutdown().await;
    let sandbox = Sandbox::connect(&node_id, &Default::default())
        .await
        .unwrap();
    assert!(sandbox
        .list_labelled("codebeaker.node", &node_id)
        .await
        .unwrap()
        .is_empty());
    pending.abort();
}
