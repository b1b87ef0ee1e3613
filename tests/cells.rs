//! Cells: one container serves job after job, each in fresh namespaces, and nothing of one job
//! reaches the next. Under gVisor a cell serves one job (no mounts in user namespaces there),
//! so these tests are about runc.

mod common;

use std::time::Duration;

use codebeaker::config::Backend;
use common::{container_of, eventually, pooled_node, ready, test_config, TestNode};
use serde_json::json;

/// Job A leaves something of every kind the kernel keeps; its background helpers report that
/// they are in place before A ends.
const LEAVE: &str = r#"
import ctypes, fcntl, os, socket, subprocess, time
libc = ctypes.CDLL(None, use_errno=True)
for d in ('/work', '/tmp', '/dev/shm'):
    open(d + '/left', 'w').write('secret')
print('shm', libc.shmget(0x5eed, 4096, 0o1666) >= 0)
print('mq', libc.mq_open(b'/cbq', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0)
key = libc.syscall(248, b'user', b'cbkey', b'v', 1, -3)
print('key', key, os.strerror(ctypes.get_errno()))
holder = "import fcntl, socket, time\n" \
    "s = socket.socket(socket.AF_UNIX); s.bind('\\0cb-abstract'); s.listen()\n" \
    "f = open('/usr/lib/os-release'); fcntl.flock(f, fcntl.LOCK_EX)\n" \
    "open('/tmp/ready', 'w').close(); time.sleep(975)"
subprocess.Popen(['python3', '-c', holder], start_new_session=True)
while not os.path.exists('/tmp/ready'):
    time.sleep(0.01)
print('left')
"#;

/// Job B looks for all of it.
const LOOK: &str = r#"
import ctypes, errno, fcntl, os, socket
libc = ctypes.CDLL(None, use_errno=True)
print(sorted(os.listdir('/work')), os.listdir('/tmp'), os.listdir('/dev/shm'))
print('shm', libc.shmget(0x5eed, 0, 0), errno.errorcode[ctypes.get_errno()])
print('mq', libc.mq_open(b'/cbq', os.O_RDONLY), errno.errorcode[ctypes.get_errno()])
print('keys', repr(open('/proc/keys').read()))
cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]
print('process', any(b'975' in c for c in cmds))
s = socket.socket(socket.AF_UNIX)
try:
    s.connect('\0cb-abstract'); print('socket connected')
except OSError as e:
    print('socket', errno.errorcode[e.errno])
f = open('/usr/lib/os-release')
fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print('flock free')
"#;

#[tokio::test]
async fn a_job_in_the_same_cell_sees_nothing_the_last_one_left() {
    let node = pooled_node(Backend::Cell, 1, 1, 1, 30).await;
    let (first, a) = container_of(&node, LEAVE).await;
    let out = a["stdout"].as_str().unwrap();
    assert!(
        out.contains("shm True\nmq True\n"),
        "job A made its IPC objects: {out}"
    );
    assert!(
        out.contains("key -1 Operation not permitted"),
        "keyctl is refused: {out}"
    );
    assert!(out.ends_with("left\n"), "{out}");
    let (second, b) = container_of(&node, LOOK).await;
    assert_eq!(first, second, "both jobs ran in the same cell");
    let seen: Vec<&str> = b["stdout"].as_str().unwrap().lines().skip(1).collect();
    assert_eq!(
        seen,
        [
            "['main.py'] [] []",
            "shm -1 ENOENT",
            "mq -1 ENOENT",
            "keys ''",
            "process False",
            "socket ECONNREFUSED",
            "flock free",
        ],
        "{b}"
    );
}

#[tokio::test]
async fn a_jobs_proc_lists_only_its_own_processes_and_the_executor_is_out_of_reach() {
    let node = pooled_node(Backend::Cell, 1, 1, 1, 30).await;
    let code = "import os, signal\n\
        pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n\
        print(pids == [1, os.getpid()], pids)\n\
        for pid in (1, -1):\n\
        \x20   for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP):\n\
        \x20       try:\n\
        \x20           os.kill(pid, sig)\n\
        \x20       except ProcessLookupError:\n\
        \x20           print('no other process for', pid)\n\
        print('still here')";
    let (_, r) = container_of(&node, code).await;
    let out = r["stdout"].as_str().unwrap();
    assert!(
        out.contains("True ["),
        "only the job's init and itself: {out}"
    );
    // Init, PID 1 here, ignores what the job sends it; nothing else is there to signal.
    assert!(out.ends_with("no other process for -1\nno other process for -1\nno other process for -1\nstill here\n"), "{r}");
    // The cell took no harm: it serves the next job.
    let next = node.python("print('next')").await;
    assert_eq!(next["stdout"], "next\n", "{next}");
}

#[tokio::test]
async fn a_cell_is_replaced_after_its_jobs_and_after_an_oom() {
    let mut config = test_config(1);
    config.docker.cell_max_jobs = 2;
    config.pool.languages = [(
        "python".to_string(),
        codebeaker::config::PoolRange { min: 1, max: 1 },
    )]
    .into();
    let node = TestNode::with_config(config).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            ready(&node).await == 1
        })
        .await
    );
    let (one, _) = container_of(&node, "").await;
    let (two, _) = container_of(&node, "").await;
    let (three, _) = container_of(&node, "").await;
    assert_eq!(one, two, "a cell serves cell_max_jobs jobs");
    assert_ne!(two, three, "then it is replaced");
    let r = node
        .python(&format!("{}x = bytearray(1 << 30)", common::WHO_AM_I))
        .await;
    assert_eq!(r["status"], "memory_limit_exceeded", "{r}");
    let hit = r["stdout"].as_str().unwrap().trim().to_string();
    let (after, _) = container_of(&node, "").await;
    assert_ne!(
        hit, after,
        "a cell hit by the OOM killer serves no more jobs"
    );
}

#[tokio::test]
async fn a_cell_that_died_in_the_pool_is_not_given_a_job() {
    let node = pooled_node(Backend::Cell, 1, 1, 1, 30).await;
    let pooled: Vec<String> = node.pooled().await.into_iter().collect();
    let killed = std::process::Command::new("docker")
        .args(["kill", &pooled[0]])
        .output()
        .unwrap();
    assert!(killed.status.success());
    let r = node.python("print('fine')").await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["stdout"], "fine\n");
}

#[tokio::test]
async fn jobs_in_cells_get_their_own_limits() {
    let node = pooled_node(Backend::Cell, 1, 1, 1, 30).await;
    let pooled = node.pooled().await;
    let r = node
        .run(json!({"language": "python", "code": common::WHO_AM_I, "cpu_time": 2, "timeout": 3, "output_limit": "1k"}))
        .await;
    let id = r["stdout"].as_str().unwrap().trim().to_string();
    assert!(
        pooled.contains(&id),
        "time and output limits are per job: {r}"
    );
    let spin = "while True: pass";
    let r = node
        .run(json!({"language": "python", "code": spin, "cpu_time": 1, "timeout": 10}))
        .await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    assert!(r["duration_ms"].as_u64().unwrap() < 3000, "{r}");
}
