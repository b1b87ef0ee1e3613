//! The hardened container every job runs in. One container per job, never reused: a pooled
//! container is one created before its job arrived, not one shared between jobs.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};

use super::bootstrap;
use super::limits::Limits;
use crate::languages::Language;

pub const LABEL_EXECUTION: &str = "codebeaker.execution_id";
pub const LABEL_NODE: &str = "codebeaker.node";
/// On containers created ahead of their job, for the pool of a language.
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

pub struct Spec<'a> {
    /// `None` for a container created ahead of its job (labelled with its pool instead).
    pub execution_id: Option<String>,
    pub node_id: &'a str,
    pub language: &'a Language,
    /// The program's arguments, after the language's run command.
    pub args: &'a [String],
    pub limits: &'a Limits,
    pub user: &'a str,
    pub runtime: Option<&'a str>,
}

impl Spec<'_> {
    pub fn build(&self) -> ContainerCreateBody {
        let mut cmd: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            bootstrap::SCRIPT.into(),
            "cb".into(),
        ];
        cmd.extend(self.language.run.iter().cloned());
        cmd.extend(self.args.iter().cloned());
        let owner = match &self.execution_id {
            Some(id) => (LABEL_EXECUTION.to_string(), id.clone()),
            None => (LABEL_POOL.to_string(), self.language.name.clone()),
        };
        let labels = HashMap::from([owner, (LABEL_NODE.to_string(), self.node_id.to_string())]);
        ContainerCreateBody {
            image: Some(self.language.image.clone()),
            // Not the container id, which would tell the job where it runs.
            hostname: Some("sandbox".into()),
            // tini as PID 1 reaps zombies and survives the bootstrap's final `kill -9 -1`.
            entrypoint: Some(vec!["/usr/bin/tini".into(), "--".into()]),
            cmd: Some(cmd),
            user: Some(self.user.to_string()),
            working_dir: Some(WORK_DIR.into()),
            env: Some(ENV.iter().map(|s| s.to_string()).collect()),
            labels: Some(labels),
            network_disabled: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(self.host_config()),
            ..Default::default()
        }
    }

    fn host_config(&self) -> HostConfig {
        let l = self.limits;
        let (uid, gid) = self.user.split_once(':').unwrap_or((self.user, self.user));
        let tmpfs = |extra: &str| {
            format!(
                "rw,{extra},nosuid,nodev,size={},uid={uid},gid={gid}",
                l.tmpfs.bytes()
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
            shm_size: Some(l.tmpfs.bytes() as i64),
            memory: Some(l.memory.bytes() as i64),
            // Equal to memory: no swap, so a memory bomb meets the limit instead of the disk.
            memory_swap: Some(l.memory.bytes() as i64),
            nano_cpus: Some((l.cpus * 1e9) as i64),
            pids_limit: Some(match self.runtime {
                // gVisor's own threads live in the container's pids cgroup too; the job's
                // processes are held by RLIMIT_NPROC inside the sandbox instead.
                Some(GVISOR) => l.pids * 8 + 1024,
                _ => l.pids,
            }),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ulimits: Some(vec![
                ulimit("nofile", l.open_files),
                ulimit("fsize", l.file_size.bytes() as i64),
                ulimit("core", 0),
            ]),
            // Output travels only over the attach stream; no log file grows on the host.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            runtime: self.runtime.map(str::to_string),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsConfig;
    use crate::languages::Languages;

    #[test]
    fn every_hardening_default_is_set() {
        let langs = Languages::load(None).unwrap();
        let python = langs.get("python").unwrap();
        let limits = Limits::resolve(
            &LimitsConfig::default(),
            &python.limits,
            &Default::default(),
        )
        .unwrap();
        let args = vec!["-v".to_string()];
        let body = Spec {
            execution_id: Some("e1".into()),
            node_id: "n1",
            language: python,
            args: &args,
            limits: &limits,
            user: "10001:10001",
            runtime: None,
        }
        .build();
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("none"));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.memory, host.memory_swap);
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_string()])
        );
        assert_eq!(host.pids_limit, Some(limits.pids));
        let tmpfs = host.tmpfs.as_ref().unwrap();
        assert!(tmpfs["/tmp"].contains("nosuid,nodev"));
        assert!(tmpfs["/work"].contains(&format!("size={}", limits.tmpfs.bytes())));
        let names: Vec<_> = host
            .ulimits
            .as_ref()
            .unwrap()
            .iter()
            .map(|u| u.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["nofile", "fsize", "core"]);
        assert_eq!(body.user.as_deref(), Some("10001:10001"));
        assert_eq!(body.cmd.as_ref().unwrap().last().unwrap(), "-v");
        assert_eq!(body.labels.unwrap()[LABEL_EXECUTION], "e1");
        assert!(body.host_config.unwrap().binds.is_none(), "no host mounts");
    }
}
