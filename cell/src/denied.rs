//! System calls that neither wall lets through: the outer seccomp profile (the whole cell,
//! executor included) and the executor's filter on programs both refuse these. Each wall adds
//! its own: the outer one what the executor never uses, the inner one namespaces and mounts.

/// Kernel interfaces no executor, compiler or program here needs, and that carry a long record
/// of kernel bugs or reach outside a container.
pub const BY_BOTH_WALLS: &[&str] = &[
    // Modules, reboot, kexec, swap, clocks, accounting, quotas, the kernel log.
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "swapon",
    "swapoff",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "acct",
    "quotactl",
    "syslog",
    // The kernel keyring is not namespaced by any of a job's namespaces.
    "keyctl",
    "add_key",
    "request_key",
    // Large attack surface no judge or teaching program needs.
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    // Reading or steering other processes, and the host's file handles.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "name_to_handle_at",
    "open_by_handle_at",
    // Namespaces joined from outside, the root switched, the new mount API.
    "setns",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    // Old and obscure, or NUMA placement Docker's default refuses without CAP_SYS_NICE.
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "uselib",
    "ustat",
    "sysfs",
    "vhangup",
    "mbind",
    "set_mempolicy",
    "move_pages",
    "migrate_pages",
];
