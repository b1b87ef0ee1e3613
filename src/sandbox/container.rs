//! The hardened container a cell lives in: the outer wall. Its main process is the executor;
//! what runs in it runs behind the executor's inner wall too.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use codebeaker_cell::protocol::EXECUTOR_PATH;

use super::limits::ByteSize;
use super::seccomp;

pub const LABEL_EXECUTION: &str = "codebeaker.execution_id";
pub const LABEL_NODE: &str = "codebeaker.node";
/// On cells created ahead of their jobs, for the pool of a language.
pub const LABEL_POOL: &str = "codebeaker.pool";
pub const WORK_DIR: &str = "/work";
/// The runtime name gVisor is registered under.
pub const GVISOR: &str = "runsc";

/// The only environment a job sees, besides what its image sets.
const ENV: &[&str] = &[
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/work",
    "TMPDIR=/tmp",
    "LANG=C.UTF-8",
];

/// Processes of a cell that are not the job's: the executor and the job's init.
const OWN_PROCESSES: i64 = 2;

/// What a cell's container is made of, and so which jobs it can serve: two jobs with the same
/// shape can share a cell. Everything else about a job is the executor's to set, per job.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub image: String,
    pub runtime: Option<String>,
    pub memory: ByteSize,
    pub pids: i64,
    pub cpus: f64,
    /// The container's own /work and /tmp, which serve jobs where the executor cannot mount
    /// fresh ones (gVisor).
    pub tmpfs: ByteSize,
    pub open_files: i64,
}

impl Shape {
    pub fn gvisor(&self) -> bool {
        self.runtime.as_deref() == Some(GVISOR)
    }
}

/// Whom a cell belongs to: a pool, or the one job it was made for.
pub enum Owner<'a> {
    Pool(&'a str),
    Execution(&'a str),
}

pub fn body(shape: &Shape, owner: Owner, node_id: &str, user: &str) -> ContainerCreateBody {
    let owner = match owner {
        Owner::Execution(id) => (LABEL_EXECUTION, id),
        Owner::Pool(language) => (LABEL_POOL, language),
    };
    let labels = HashMap::from([
        (owner.0.to_string(), owner.1.to_string()),
        (LABEL_NODE.to_string(), node_id.to_string()),
    ]);
    ContainerCreateBody {
        image: Some(shape.image.clone()),
        // Not the container id, which would tell the job where it runs.
        hostname: Some("sandbox".into()),
        entrypoint: Some(vec![EXECUTOR_PATH.into()]),
        cmd: Some(vec![]),
        user: Some(user.to_string()),
        working_dir: Some(WORK_DIR.into()),
        env: Some(ENV.iter().map(|s| s.to_string()).collect()),
        labels: Some(labels),
        network_disabled: Some(true),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        // One attach for the cell's whole life: stdin stays open between jobs.
        open_stdin: Some(true),
        stdin_once: Some(false),
        tty: Some(false),
        host_config: Some(host_config(shape, user)),
        ..Default::default()
    }
}

fn host_config(shape: &Shape, user: &str) -> HostConfig {
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let tmpfs = |extra: &str| {
        format!(
            "rw,{extra},nosuid,nodev,size={},uid={uid},gid={gid}",
            shape.tmpfs.bytes()
        )
    };
    let ulimit = |name: &str, value: i64| ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(value),
        hard: Some(value),
    };
    HostConfig {
        network_mode: Some("none".into()),
        readonly_rootfs: Some(true),
        tmpfs: Some(HashMap::from([
            // The work dir needs exec: some languages run what they compile there.
            (WORK_DIR.to_string(), tmpfs("exec,mode=0700")),
            ("/tmp".to_string(), tmpfs("noexec,mode=1777")),
        ])),
        shm_size: Some(shape.tmpfs.bytes() as i64),
        memory: Some(shape.memory.bytes() as i64),
        // Equal to memory: no swap, so a memory bomb meets the limit instead of the disk.
        memory_swap: Some(shape.memory.bytes() as i64),
        nano_cpus: Some((shape.cpus * 1e9) as i64),
        pids_limit: Some(match shape.gvisor() {
            // gVisor's own threads live in the container's pids cgroup too; the job's
            // processes are held by RLIMIT_NPROC inside the sandbox instead.
            true => shape.pids * 8 + 1024,
            false => shape.pids + OWN_PROCESSES,
        }),
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec![
            "no-new-privileges".into(),
            format!("seccomp={}", seccomp::profile()),
        ]),
        // Docker's masks over /proc forbid any fresh procfs under them; the executor masks
        // the same paths on the procfs it mounts for each job (`systempaths=unconfined`).
        masked_paths: Some(vec![]),
        readonly_paths: Some(vec![]),
        ulimits: Some(vec![
            // The executor holds a few fds of its own; each job gets the limit it asks for.
            ulimit("nofile", shape.open_files + 64),
            ulimit("core", 0),
        ]),
        // Output travels only over the attach stream; no log file grows on the host.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        runtime: shape.runtime.clone(),
        ..Default::default()
    }
}

/// The `docker run` command line for a container of `shape` running `cmd` as its main process
/// (the benchmark's baseline). The CLI takes a seccomp profile as a file: it is written to
/// `profile_path`.
pub fn docker_run_args(
    shape: &Shape,
    user: &str,
    profile_path: &std::path::Path,
    cmd: &[&str],
) -> std::io::Result<Vec<String>> {
    let body = body(shape, Owner::Execution("bench"), "bench", user);
    let host = body.host_config.unwrap_or_default();
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    let mut flag = |name: &str, value: String| args.push(format!("--{name}={value}"));
    flag("network", host.network_mode.unwrap_or_default());
    flag("read-only", "true".into());
    for (path, options) in host.tmpfs.unwrap_or_default() {
        flag("tmpfs", format!("{path}:{options}"));
    }
    for (name, value) in [
        ("memory", host.memory),
        ("memory-swap", host.memory_swap),
        ("pids-limit", host.pids_limit),
        ("shm-size", host.shm_size),
    ] {
        flag(name, value.unwrap_or_default().to_string());
    }
    flag(
        "cpus",
        format!("{}", host.nano_cpus.unwrap_or_default() as f64 / 1e9),
    );
    for cap in host.cap_drop.unwrap_or_default() {
        flag("cap-drop", cap);
    }
    for opt in host.security_opt.unwrap_or_default() {
        match opt.strip_prefix("seccomp=") {
            Some(profile) => {
                std::fs::write(profile_path, profile)?;
                flag(
                    "security-opt",
                    format!("seccomp={}", profile_path.display()),
                );
            }
            None => flag("security-opt", opt),
        }
    }
    flag("security-opt", "systempaths=unconfined".into());
    for u in host.ulimits.unwrap_or_default() {
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        flag(
            "ulimit",
            format!("{}={soft}:{hard}", u.name.unwrap_or_default()),
        );
    }
    flag("log-driver", "none".into());
    if let Some(runtime) = host.runtime {
        flag("runtime", runtime);
    }
    flag("user", user.to_string());
    flag("workdir", WORK_DIR.into());
    for env in body.env.unwrap_or_default() {
        flag("env", env);
    }
    flag("entrypoint", cmd[0].to_string());
    args.push(shape.image.clone());
    args.extend(cmd[1..].iter().map(|s| s.to_string()));
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hardening_default_is_set() {
        let shape = Shape {
            image: "codebeaker/python:latest".into(),
            runtime: None,
            memory: ByteSize::mib(256),
            pids: 64,
            cpus: 1.0,
            tmpfs: ByteSize::mib(64),
            open_files: 256,
        };
        let body = body(&shape, Owner::Execution("e1"), "n1", "10001:10001");
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.memory, host.memory_swap);
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        let security = host.security_opt.as_ref().unwrap();
        assert_eq!(security[0], "no-new-privileges");
        assert!(security[1].starts_with("seccomp={"), "our own profile");
        assert_eq!(host.pids_limit, Some(64 + OWN_PROCESSES));
        let tmpfs = host.tmpfs.as_ref().unwrap();
        assert!(tmpfs["/tmp"].contains("nosuid,nodev"));
        assert_eq!(body.user.as_deref(), Some("10001:10001"));
        assert_eq!(body.entrypoint, Some(vec![EXECUTOR_PATH.to_string()]));
        assert_eq!(body.labels.as_ref().unwrap()[LABEL_EXECUTION], "e1");
        assert!(
            host.binds.is_none() && host.mounts.is_none(),
            "no host mounts"
        );
        assert_eq!(
            host.log_config.as_ref().unwrap().typ.as_deref(),
            Some("none")
        );
    }
}
