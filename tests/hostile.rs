//! The hostile-code catalogue. Every attack asserts its exact status, and that the next job on
//! the same node still runs normally.

mod common;

use common::TestNode;
use serde_json::{json, Value};

/// Runs the attack, then checks that the node serves an ordinary job afterwards.
async fn attack(node: &TestNode, request: Value) -> Value {
    let record = node.run(request).await;
    let next = node.python("print('next')").await;
    assert_eq!(
        next["status"], "completed",
        "the job after the attack: {next}"
    );
    assert_eq!(next["stdout"], "next\n");
    // The attack's cell is removed in the background; under gVisor, a cell that held a fork
    // bomb can take seconds to go.
    let cleaned = common::eventually(std::time::Duration::from_secs(30), || async {
        node.leftover_containers().await.is_empty()
    })
    .await;
    assert!(cleaned, "nothing of the attack is left");
    record
}

fn bash(code: &str) -> Value {
    json!({"language": "bash", "code": code, "timeout": 3})
}

fn python(code: &str) -> Value {
    json!({"language": "python", "code": code, "timeout": 5})
}

// ---- attacks that end with a limit status ----

#[tokio::test]
async fn a_bash_fork_bomb_is_held_by_the_pids_limit() {
    let node = TestNode::start(1).await;
    // Without `&` every level waits for its pipeline, so the bomb holds until the deadline.
    let r = attack(&node, bash(":(){ :|: ; };:")).await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    let stderr = r["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("fork: retry: Resource temporarily unavailable"),
        "the pids limit held: {stderr}"
    );
}

#[tokio::test]
async fn filling_dev_shm_is_memory_limit_exceeded() {
    let node = TestNode::start(1).await;
    // Files under the file size limit; tmpfs pages count against the container's memory.
    let code = "n = 0\nwhile True:\n    with open(f'/dev/shm/fill{n}', 'wb') as f:\n        f.write(b'x' * (8 << 20))\n    n += 1";
    let r = attack(
        &node,
        json!({"language": "python", "code": code, "memory_limit": "48m", "timeout": 5}),
    )
    .await;
    assert_eq!(r["status"], "memory_limit_exceeded", "{r}");
}

#[tokio::test]
async fn filling_the_tmpfs_gets_enospc() {
    let node = TestNode::start(1).await;
    // Files of 8 MiB each stay under the file size limit; the 64 MiB tmpfs runs out first.
    let code = "import errno\nn = 0\ntry:\n    while True:\n        with open(f'/work/f{n}', 'wb') as f:\n            f.write(b'x' * (8 << 20))\n        n += 1\nexcept OSError as e:\n    print(errno.errorcode[e.errno], n < 9)";
    let r = attack(
        &node,
        json!({"language": "python", "code": code, "memory_limit": "512m", "timeout": 10}),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["stdout"], "ENOSPC True\n");
}

#[tokio::test]
async fn writing_past_the_file_size_limit_is_sigxfsz_in_the_result() {
    let node = TestNode::start(1).await;
    let r = attack(
        &node,
        bash("exec dd if=/dev/zero of=big bs=1M count=32 status=none"),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["signal"], "SIGXFSZ");
    assert_eq!(r["exit_code"], 128 + 25);
}

#[tokio::test]
async fn cpu_time_stops_a_spinning_multithreaded_program_before_its_wall_time() {
    let node = TestNode::start(1).await;
    let code = "#include <pthread.h>\nvoid *spin(void *a) { for (;;) {} return a; }\nint main(void) { pthread_t t[4]; for (int i = 0; i < 4; i++) pthread_create(&t[i], 0, spin, 0); pthread_join(t[0], 0); }";
    let r = attack(
        &node,
        json!({"language": "c", "code": code, "cpu_time": 1, "timeout": 20}),
    )
    .await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    assert_eq!(r["signal"], "SIGXCPU");
    assert!(
        r["duration_ms"].as_u64().unwrap() < 10_000,
        "well before the wall limit: {r}"
    );
}

#[tokio::test]
async fn cpu_time_is_summed_over_processes_that_each_stay_under_it() {
    let node = TestNode::start(1).await;
    // Each subshell has an RLIMIT_CPU of its own; only the sum over the job stops them.
    let r = attack(&node, json!({"language": "bash", "code": "(while :; do :; done) & (while :; do :; done) & wait", "cpu_time": 1, "timeout": 20})).await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    let cpu = r["cpu_time_ms"].as_u64().unwrap();
    assert!(
        (1000..2000).contains(&cpu),
        "soon after one CPU second: {r}"
    );
    assert!(r["duration_ms"].as_u64().unwrap() < 5_000, "{r}");
}

#[tokio::test]
async fn kill_minus_one_cannot_reach_what_measures_and_reports() {
    let node = TestNode::start(1).await;
    // The shell survives its own kill -1; python, the job's program, does not, and the job
    // ends with it.
    let r = attack(
        &node,
        python(
            "import subprocess
subprocess.run(['sh', '-c', 'kill -9 -1; echo shell after'])
print('unreachable')",
        ),
    )
    .await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["signal"], "SIGKILL", "{r}");
    assert_eq!(r["exit_code"], 137);
    // The shell may or may not print before the job's end kills it; python never goes on.
    assert!(
        !r["stdout"].as_str().unwrap().contains("unreachable"),
        "{r}"
    );
}

#[tokio::test]
async fn wall_time_stops_a_sleeping_program_that_uses_no_cpu() {
    let node = TestNode::start(1).await;
    let r = attack(&node, json!({"language": "python", "code": "import time\ntime.sleep(60)", "cpu_time": 1, "timeout": 1})).await;
    assert_eq!(r["status"], "time_limit_exceeded", "{r}");
    assert_eq!(r["signal"], Value::Null);
}

#[tokio::test]
async fn a_program_waiting_on_stdin_gets_end_of_file() {
    let node = TestNode::start(1).await;
    let r = attack(
        &node,
        python("import sys\nprint(len(sys.stdin.read()))\nprint(sys.stdin.read() == '')"),
    )
    .await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["stdout"], "0\nTrue\n");
}

#[tokio::test]
async fn a_double_forked_setsid_daemon_is_gone_after_the_job() {
    let node = TestNode::start(1).await;
    let code = "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '977'])\n    os._exit(0)\nos.wait()\nprint('parent done')";
    let r = attack(&node, python(code)).await;
    assert_eq!(r["status"], "completed");
    assert!(
        r["duration_ms"].as_u64().unwrap() < 3000,
        "the daemon did not hold the job open"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("sleep 977"));
}

#[tokio::test]
async fn opening_files_without_end_gets_emfile() {
    let node = TestNode::start(1).await;
    let code = "import errno\nfiles = []\ntry:\n    while True:\n        files.append(open('/dev/null'))\nexcept OSError as e:\n    print(errno.errorcode[e.errno], len(files) < 256)";
    let r = attack(&node, python(code)).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["stdout"], "EMFILE True\n");
}

// ---- attacks that must simply fail ----

#[tokio::test]
async fn the_api_port_the_nats_port_and_dns_are_out_of_reach() {
    let node = TestNode::start(1).await;
    let api = node.node().addr.port();
    let nats = node.nats.as_ref().unwrap().port;
    let code = format!(
        "import socket\n\
         for port in ({api}, {nats}):\n\
         \x20   s = socket.socket()\n\
         \x20   s.settimeout(2)\n\
         \x20   try:\n\
         \x20       s.connect(('127.0.0.1', port))\n\
         \x20       print('connected')\n\
         \x20   except OSError as e:\n\
         \x20       print('refused', e.errno)\n\
         try:\n\
         \x20   socket.getaddrinfo('codebeaker-test.invalid', 80)\n\
         \x20   print('resolved')\n\
         except socket.gaierror:\n\
         \x20   print('no dns')"
    );
    let r = attack(&node, python(&code)).await;
    assert_eq!(r["stdout"], "refused 111\nrefused 111\nno dns\n", "{r}");
}

#[tokio::test]
async fn proc_shows_no_host_environment() {
    let node = TestNode::start(1).await;
    std::env::set_var("CODEBEAKER_TEST_SECRET", "do-not-leak");
    let code = "import os\nkeys = set()\nfor pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n    try:\n        for item in open(f'/proc/{pid}/environ', 'rb').read().split(b'\\0'):\n            if item:\n                keys.add(item.split(b'=')[0].decode())\n    except OSError:\n        pass\nprint(sorted(keys))";
    let r = attack(&node, python(code)).await;
    let seen = r["stdout"].as_str().unwrap();
    assert!(!seen.contains("SECRET"), "{seen}");
    let allowed = [
        "HOME",
        "HOSTNAME",
        "LANG",
        "MPLBACKEND",
        "MPLCONFIGDIR",
        "PATH",
        "PWD",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "TMPDIR",
    ];
    let keys: Vec<String> = serde_json::from_str(&seen.trim().replace('\'', "\"")).unwrap();
    assert!(
        keys.iter().all(|k| allowed.contains(&k.as_str())),
        "{keys:?}"
    );
}

#[tokio::test]
async fn setuid_binaries_give_no_privilege() {
    let node = TestNode::start(1).await;
    let code = "import os, stat, subprocess\n\
        print(bool(os.stat('/usr/bin/su').st_mode & stat.S_ISUID))\n\
        for cmd in (['su', '-c', 'id -u', 'root'], ['mount', '-t', 'tmpfs', 'none', '/tmp']):\n\
        \x20   r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)\n\
        \x20   print(cmd[0], r.returncode != 0, b'0' != r.stdout.strip())\n\
        print(os.geteuid())";
    let r = attack(&node, python(code)).await;
    assert_eq!(
        r["stdout"], "True\nsu True True\nmount True True\n10001\n",
        "{r}"
    );
}

#[tokio::test]
async fn mount_unshare_and_keyctl_are_refused() {
    let node = TestNode::start(1).await;
    let code = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n\
        def call(name, *args):\n    r = getattr(libc, name)(*args)\n    print(name, r, os.strerror(ctypes.get_errno()) if r != 0 else '')\n\
        call('mount', b'none', b'/tmp', b'tmpfs', 0, None)\n\
        call('unshare', 0x10000000)\n\
        call('syscall', 250, 0, 0, 0, 0)";
    let r = attack(&node, python(code)).await;
    let out = r["stdout"].as_str().unwrap();
    assert!(out.contains("mount -1 Operation not permitted"), "{out}");
    // gVisor lets a job make user namespaces inside its own kernel; runc's seccomp refuses.
    if !common::gvisor() {
        assert!(out.contains("unshare -1 Operation not permitted"), "{out}");
    }
    assert!(out.contains("syscall -1"), "keyctl: {out}");
}

#[tokio::test]
async fn symlinks_a_job_makes_reach_nothing_outside_it() {
    let node = TestNode::start(1).await;
    // A job may point links anywhere; they resolve inside its own container, and the node reads
    // nothing back from the container but the two output streams.
    let r = attack(&node, bash("ln -s /etc/shadow /work/out\ncat /work/out 2>&1 | head -c 40; echo\nln -s / /work/root && ls /work/root/ | head -3")).await;
    assert_eq!(r["status"], "completed");
    assert!(
        r["stdout"]
            .as_str()
            .unwrap()
            .starts_with("cat: /work/out: Permission denied"),
        "{r}"
    );
}

// ---- data the node carries intact ----

#[tokio::test]
async fn invalid_utf8_and_nul_bytes_come_back_exactly() {
    let node = TestNode::start(1).await;
    let r = attack(&node, python("import sys\nsys.stdout.buffer.write(b'ok\\x00\\xff\\xfe')\nsys.stderr.buffer.write(b'\\x00')")).await;
    assert_eq!(r["status"], "completed");
    assert_eq!(r["stdout"], "ok\u{0}\u{fffd}\u{fffd}");
    assert_eq!(r["stdout_base64"], "b2sA//4=");
    assert_eq!(r["stderr"], "\u{0}");
    assert_eq!(r["stderr_base64"], Value::Null, "valid UTF-8 needs no copy");
}

#[tokio::test]
async fn the_next_job_sees_nothing_of_the_last() {
    let node = TestNode::start(1).await;
    let plant = "import subprocess\nfor d in ('/work', '/tmp'):\n    open(d + '/marker', 'w').write('secret')\nsubprocess.Popen(['sleep', '976'], start_new_session=True)";
    assert_eq!(node.run(python(plant)).await["status"], "completed");
    let look = "import os\nprint(sorted(os.listdir('/work')), os.listdir('/tmp'))\n\
        cmds = [open(f'/proc/{p}/cmdline', 'rb').read() for p in os.listdir('/proc') if p.isdigit()]\n\
        print(any(b'976' in c for c in cmds))";
    let second = node.run(python(look)).await;
    assert_eq!(second["stdout"], "['main.py'] []\nFalse\n", "{second}");
}
