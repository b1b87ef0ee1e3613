//! The outer wall's seccomp profile, the one Docker loads for the whole cell.
//!
//! Built, not copied: every x86_64 system call the `syscalls` table knows is allowed except
//! the ones below, and any other (a call newer than the table, or a 32-bit one) fails with
//! EPERM. What this allows beyond Docker's default profile is what the executor needs to build
//! the inner wall: `clone`/`unshare` with namespace flags, `mount`, `umount2` and
//! `sethostname`, which without capabilities work only inside the user namespace a job gets.
//! The programs themselves run under the executor's stricter filter (see the cell crate).

use codebeaker_cell::denied::BY_BOTH_WALLS;
use serde_json::{json, Value};
use syscalls::Sysno;

/// Refused to the whole cell beyond what both walls refuse: calls gone from the kernel.
const DENIED: &[&str] = &[
    "create_module",
    "query_module",
    "get_kernel_syms",
    "nfsservctl",
    "_sysctl",
    "vm86",
    "vm86old",
    "quotactl_fd",
    "personality",
];

/// Answered ENOSYS: the C library then falls back to `clone`, whose flags a filter can see.
const UNAVAILABLE: &[&str] = &["clone3"];

/// The profile as Docker takes it in `security_opt` (`seccomp=<json>`): built once, sent with
/// every cell's create.
pub fn profile() -> &'static str {
    static PROFILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROFILE.get_or_init(build)
}

fn build() -> String {
    let allowed: Vec<&str> = Sysno::iter()
        .map(|s| s.name())
        .filter(|n| !BY_BOTH_WALLS.contains(n) && !DENIED.contains(n) && !UNAVAILABLE.contains(n))
        .collect();
    let profile: Value = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        // EPERM, as Docker's own profile answers.
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            {"names": UNAVAILABLE, "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        ],
    });
    profile.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_denies_what_the_executor_never_needs_and_allows_what_it_does() {
        let profile: Value = serde_json::from_str(profile()).unwrap();
        let allowed: Vec<&str> = profile["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        for needed in [
            "clone",
            "unshare",
            "mount",
            "umount2",
            "sethostname",
            "execve",
            "read",
        ] {
            assert!(allowed.contains(&needed), "{needed}");
        }
        for refused in ["ptrace", "bpf", "keyctl", "setns", "clone3", "kexec_load"] {
            assert!(!allowed.contains(&refused), "{refused}");
        }
        assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(profile["architectures"], json!(["SCMP_ARCH_X86_64"]));
    }

    #[test]
    fn every_denied_name_is_a_known_system_call_or_a_retired_one() {
        let known: Vec<&str> = Sysno::iter().map(|s| s.name()).collect();
        let retired = [
            "vm86",
            "vm86old",
            "create_module",
            "query_module",
            "get_kernel_syms",
            "nfsservctl",
            "_sysctl",
        ];
        for name in BY_BOTH_WALLS.iter().chain(DENIED) {
            assert!(known.contains(name) || retired.contains(name), "{name}");
        }
    }
}
