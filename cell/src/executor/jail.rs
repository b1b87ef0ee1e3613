//! The job's own init: the first process in the job's fresh namespaces (PID 1 of its pid
//! namespace). It builds the inner wall's mounts, writes the job's files, runs the compile step
//! and the program as its children, reaps whatever they leave, and tells the executor what
//! happened over a pipe only it holds. When it exits, the kernel kills everything left in the
//! namespace: nothing of a job outlives it.
//!
//! What the program can do to it: nothing. SIGKILL and SIGSTOP from inside a pid namespace do
//! not reach its init, init installs no handler for any other signal, it is not dumpable (its
//! /proc entries belong to nobody the program can be), and the program's filter refuses ptrace.
//! The executor itself lives outside the namespace and cannot be seen at all.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;

use libseccomp::ScmpFilterContext;

use super::sys::{self, check};
use crate::protocol::Job;

/// The fds init works with, inherited from the executor across clone.
pub struct Ends {
    /// The cell's user and group, read before clone: inside, they show as unmapped until the
    /// maps are written.
    pub ids: (libc::uid_t, libc::gid_t),
    /// Write end: init's notes to the executor, one line each.
    pub notes: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub compile_stdout: RawFd,
    pub compile_stderr: RawFd,
    /// Write end: the work dir after the compile step, for a job that keeps it.
    pub work: RawFd,
    /// The executor's own ends of those pipes, inherited across clone: closed first, or the
    /// program would never see the end of its stdin.
    pub executor_ends: Vec<RawFd>,
}

/// What a program child needs, prepared before clone so that nothing is parsed after it.
pub struct Programs<'a> {
    pub filter: &'a ScmpFilterContext,
    pub env: &'a [CString],
    pub compile: Option<Vec<CString>>,
    pub run: Vec<CString>,
}

pub const WORK: &str = "/work";

/// Runs as init; never returns.
pub fn init(job: &Job, ends: &Ends, programs: &Programs) -> ! {
    let code = match serve(job, ends, programs) {
        Ok(()) => 0,
        Err(e) => {
            note(ends.notes, &format!("failed {e}"));
            1
        }
    };
    unsafe { libc::_exit(code) }
}

fn note(fd: RawFd, line: &str) {
    // Shorter than PIPE_BUF, so one write arrives whole.
    let _ = sys::write_all(fd, format!("{line}\n").as_bytes());
}

/// A setup step that failed, named for the executor's report.
fn step(what: &'static str) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn serve(job: &Job, ends: &Ends, programs: &Programs) -> io::Result<()> {
    for &fd in &ends.executor_ends {
        unsafe { libc::close(fd) };
    }
    // The executor's fds 0-2 are its attach stream: the job must never hold them.
    let null = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) })?;
    for fd in 0..3 {
        sys::dup_onto(null, fd)?;
    }
    write_id_maps(ends.ids).map_err(step("user namespace id maps"))?;
    // The kernel's OOM killer takes a job's process before the executor (inherited by all).
    std::fs::write("/proc/self/oom_score_adj", "1000").map_err(step("oom_score_adj"))?;
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if job.isolation.fresh_mounts {
        fresh_mounts(job).map_err(step("mounting the job's file systems"))?;
    }
    name_and_network().map_err(step("host name and loopback"))?;
    write_files(job).map_err(step("writing the job's files"))?;
    std::env::set_current_dir(WORK).map_err(step("entering /work"))?;

    if let Some(compile) = &programs.compile {
        let io = [null, ends.compile_stdout, ends.compile_stderr];
        note(ends.notes, "compiling");
        let pid = spawn(compile, &io, programs, None, job)?;
        let status = wait_for(pid);
        end_everything_else();
        note(ends.notes, &format!("compiled {status}"));
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Ok(());
        }
        if job.keep_work {
            send_work(ends.work).map_err(step("sending the compiled work dir"))?;
            note(ends.notes, "kept");
            return Ok(());
        }
    }
    note(ends.notes, "started");
    let cpu_secs = job.limits.cpu_ms.div_ceil(1000).max(1);
    let stderr = match job.stderr_to_stdout {
        true => ends.stdout,
        false => ends.stderr,
    };
    let io = [ends.stdin, ends.stdout, stderr];
    let pid = spawn(&programs.run, &io, programs, Some(cpu_secs), job)?;
    let status = wait_for(pid);
    note(ends.notes, &format!("exited {status}"));
    end_everything_else();
    Ok(())
}

/// Maps the cell's own user into the job's user namespace, and nobody else: the job's files
/// belong to that user, and no other id exists inside. Init writes its own maps (gVisor lets
/// no other process write them); it is still dumpable here, as the executor left it, so that
/// its /proc files are its own.
fn write_id_maps((uid, gid): (libc::uid_t, libc::gid_t)) -> io::Result<()> {
    // Linux wants setgroups denied before an unprivileged gid map; gVisor has no such file to
    // write, and takes the map without it.
    let _ = std::fs::write("/proc/self/setgroups", "deny");
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// Waits for `pid`, reaping every other child on the way.
fn wait_for(pid: libc::pid_t) -> libc::c_int {
    loop {
        match sys::wait(-1, false) {
            Some((p, status)) if p == pid => return status,
            Some(_) => continue,
            None => return 0,
        }
    }
}

/// Kills every other process of the job and reaps them all.
fn end_everything_else() {
    sys::kill(-1, libc::SIGKILL);
    while sys::wait(-1, false).is_some() {}
}

/// The mount namespace of a fresh job: its mounts are its own, and go with it.
fn fresh_mounts(job: &Job) -> io::Result<()> {
    let (nosuid, nodev, noexec) = (libc::MS_NOSUID, libc::MS_NODEV, libc::MS_NOEXEC);
    sys::mount("none", "/", None, libc::MS_REC | libc::MS_PRIVATE, None)
        .map_err(step("private mounts"))?;
    let size = job.limits.tmpfs_bytes;
    let tmpfs = |path: &str, flags, mode: &str| {
        sys::mount(
            "tmpfs",
            path,
            Some("tmpfs"),
            flags,
            Some(&format!("size={size},mode={mode}")),
        )
        .map_err(step("tmpfs"))
    };
    // The work dir needs exec: some languages run what they compile there.
    tmpfs(WORK, nosuid | nodev, "0700")?;
    tmpfs("/tmp", nosuid | nodev | noexec, "1777")?;
    tmpfs("/dev/shm", nosuid | nodev | noexec, "1777")?;
    // The cell's own queue namespace would outlive the job: a fresh one belongs to it.
    optional(sys::mount(
        "mqueue",
        "/dev/mqueue",
        Some("mqueue"),
        nosuid | nodev | noexec,
        None,
    ))
    .map_err(step("mqueue"))?;
    sys::mount("proc", "/proc", Some("proc"), nosuid | nodev | noexec, None)
        .map_err(step("procfs"))?;
    mask_procfs().map_err(step("masking procfs"))
}

fn name_and_network() -> io::Result<()> {
    let name = b"sandbox";
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    match loopback_up() {
        // gVisor's network stack takes no interface ioctls; its loopback is its own affair.
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Ok(()),
        other => other,
    }
}

/// A mount point the runtime does not provide is not an error.
fn optional(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// What runc hides or freezes in a container's procfs and sysfs, done again on the job's own
/// procfs (Docker's masks had to be lifted from the cell for a fresh procfs to be allowed).
const HIDDEN: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const FROZEN: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mask_procfs() -> io::Result<()> {
    let locked = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    for path in HIDDEN {
        let hidden = match std::fs::metadata(path) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => sys::mount(
                "tmpfs",
                path,
                Some("tmpfs"),
                libc::MS_RDONLY | locked,
                Some("size=0"),
            ),
            Ok(_) => sys::mount("/dev/null", path, None, libc::MS_BIND, None),
        };
        hidden?;
    }
    for path in FROZEN {
        if std::fs::metadata(path).is_err() {
            continue;
        }
        sys::mount(path, path, None, libc::MS_BIND | libc::MS_REC, None)?;
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | locked;
        sys::mount(path, path, None, flags, None)?;
    }
    Ok(())
}

/// The job's network namespace has only `lo`, down until raised: local sockets then work as
/// programs expect, and nothing else is there.
fn loopback_up() -> io::Result<()> {
    let sock =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let result = (|| {
        check(unsafe { libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) })?;
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        check(unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) }).map(drop)
    })();
    unsafe { libc::close(sock) };
    result
}

fn write_files(job: &Job) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let work = std::path::Path::new(WORK);
    for file in &job.files {
        let path = work.join(&file.name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &file.content)?;
        if file.executable {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(())
}

/// Writes the work dir's regular files (MessagePack) to `fd`. Every process of the compile
/// step is dead by now, so nothing changes under the walk; links and special files are left
/// out, so that nothing outside /work is ever read.
fn send_work(fd: RawFd) -> io::Result<()> {
    let mut files = Vec::new();
    let mut total = 0;
    collect(std::path::Path::new(WORK), &mut files, &mut total)?;
    let bytes = rmp_serde::to_vec_named(&files).map_err(io::Error::other)?;
    sys::write_all(fd, &bytes)
}

fn collect(
    dir: &std::path::Path,
    files: &mut Vec<crate::protocol::File>,
    total: &mut u64,
) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect(&path, files, total)?;
        } else if kind.is_file() {
            let content = std::fs::read(&path)?;
            *total += content.len() as u64;
            if *total > crate::protocol::MAX_WORK {
                return Err(io::Error::other(format!(
                    "the work dir is over {} MiB",
                    crate::protocol::MAX_WORK >> 20
                )));
            }
            let name = path.strip_prefix(WORK).map_err(io::Error::other)?;
            files.push(crate::protocol::File {
                name: name.to_string_lossy().into_owned(),
                content,
                executable: entry.metadata()?.permissions().mode() & 0o111 != 0,
            });
        }
    }
    Ok(())
}

/// Forks a program child with `io` as its fds 0-2 and the job's limits and filter.
fn spawn(
    argv: &[CString],
    io: &[RawFd; 3],
    programs: &Programs,
    cpu_secs: Option<u64>,
    job: &Job,
) -> io::Result<libc::pid_t> {
    let pid = check(unsafe { libc::fork() })?;
    if pid == 0 {
        let error = become_program(argv, io, programs, cpu_secs, job);
        let message = format!("codebeaker: cannot run {:?}: {error}\n", argv[0]);
        let _ = sys::write_all(2, message.as_bytes());
        unsafe { libc::_exit(127) };
    }
    Ok(pid)
}

/// In the child: limits, no capabilities, the filter, then exec. Returns only on failure.
fn become_program(
    argv: &[CString],
    io: &[RawFd; 3],
    programs: &Programs,
    cpu_secs: Option<u64>,
    job: &Job,
) -> io::Error {
    let setup = || -> io::Result<()> {
        for (target, &fd) in io.iter().enumerate() {
            sys::dup_onto(fd, target as RawFd).map_err(step("standard streams"))?;
        }
        // Every other fd goes: the notes pipe, the other steps' pipes.
        close_the_rest().map_err(step("closing fds"))?;
        unsafe { libc::setsid() };
        let l = &job.limits;
        let limit =
            |resource, soft, hard| sys::setrlimit(resource, soft, hard).map_err(step("rlimits"));
        limit(libc::RLIMIT_CORE, 0, 0)?;
        limit(libc::RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes)?;
        limit(libc::RLIMIT_NOFILE, l.open_files, l.open_files)?;
        if let Some(n) = l.nproc {
            limit(libc::RLIMIT_NPROC, n, n)?;
        }
        if let Some(stack) = l.stack_bytes {
            limit(libc::RLIMIT_STACK, stack, stack)?;
        }
        // Per process, SIGXCPU at the limit and SIGKILL a second later; the executor holds
        // the sum over all processes.
        if let Some(secs) = cpu_secs {
            limit(libc::RLIMIT_CPU, secs, secs + 1)?;
        }
        drop_capabilities();
        programs
            .filter
            .load()
            .map_err(|e| io::Error::other(format!("seccomp filter: {e}")))?;
        Ok(())
    };
    if let Err(e) = setup() {
        return e;
    }
    let mut args: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    args.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = programs.env.iter().map(|e| e.as_ptr()).collect();
    env.push(std::ptr::null());
    unsafe { libc::execvpe(args[0], args.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
}

/// Closes every fd above 2. close_range where the kernel has it; gVisor has not, so there
/// the open fds are listed and closed one by one.
fn close_the_rest() -> io::Result<()> {
    if unsafe { libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0) } == 0 {
        return Ok(());
    }
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in open {
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// A new user namespace hands its first process every capability inside it. The program runs
/// as an ordinary user, so exec clears them; the bounding and ambient sets go as well, so that
/// no file capability could bring one back.
fn drop_capabilities() {
    for cap in 0..64 {
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
}
