//! The seccomp filter on every program a job runs (compiler and program alike), installed just
//! before exec. It is stricter than Docker's default profile, which the cell as a whole runs
//! under: the executor needed namespaces and mounts to build the inner wall; the program gets
//! neither, nor any of the kernel's riskier interfaces.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::denied::BY_BOTH_WALLS;

/// Refused with EPERM, beyond what both walls refuse: the walls the executor built stay as
/// they are.
const DENIED: &[&str] = &[
    "unshare",
    "mount",
    "umount2",
    "chroot",
    "get_mempolicy",
    "nfsservctl",
    "_sysctl",
    "personality",
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
    for name in BY_BOTH_WALLS.iter().chain(DENIED) {
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
        for name in BY_BOTH_WALLS.iter().chain(DENIED) {
            assert!(ScmpSyscall::from_name(name).is_ok(), "{name}");
        }
        program_filter().expect("the filter builds");
    }
}
