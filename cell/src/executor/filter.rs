//! The seccomp filter on every program a job runs (compiler and program alike), installed just
//! before exec. It is stricter than Docker's default profile, which the cell as a whole runs
//! under: the executor needed namespaces and mounts to build the inner wall; the program gets
//! neither, nor any of the kernel's riskier interfaces.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// Refused with EPERM.
const DENIED: &[&str] = &[
    // Namespaces and mounts: the walls the executor built stay as they are.
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    // The kernel keyring is not namespaced by any of the job's namespaces.
    "keyctl",
    "add_key",
    "request_key",
    // Large kernel attack surface that no judge or teaching program needs.
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    // Reading or steering other processes.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    // What Docker's default refuses without capabilities; refused here whatever happens to
    // the capabilities.
    "syslog",
    "acct",
    "quotactl",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "name_to_handle_at",
    "open_by_handle_at",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "uselib",
    "ustat",
    "sysfs",
    "nfsservctl",
    "_sysctl",
    "vhangup",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "move_pages",
    "migrate_pages",
];

/// Namespace flags `clone` may not carry.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

/// Builds the filter. 32-bit (i386) and x32 system calls fail with ENOSYS: libseccomp
/// treats them as foreign architectures, which the filter does not add.
pub fn program_filter() -> Result<ScmpFilterContext, libseccomp::error::SeccompError> {
    let mut filter = ScmpFilterContext::new(ScmpAction::Allow)?;
    filter.set_act_badarch(ScmpAction::Errno(libc::ENOSYS))?;
    let eperm = ScmpAction::Errno(libc::EPERM);
    for name in DENIED {
        filter.add_rule(eperm, ScmpSyscall::from_name(name)?)?;
    }
    let clone = ScmpSyscall::from_name("clone")?;
    for &flag in NAMESPACE_FLAGS {
        let carries = ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(flag), flag);
        filter.add_rule_conditional(eperm, clone, &[carries])?;
    }
    // clone3 passes its flags in memory, out of a filter's sight: ENOSYS makes the C library
    // fall back to clone, whose flags the rules above can see.
    filter.add_rule(
        ScmpAction::Errno(libc::ENOSYS),
        ScmpSyscall::from_name("clone3")?,
    )?;
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_denied_name_is_a_known_system_call() {
        for name in DENIED {
            assert!(ScmpSyscall::from_name(name).is_ok(), "{name}");
        }
        program_filter().expect("the filter builds");
    }
}
