//! Thin, checked wrappers over the few system calls the executor makes, so that the rest reads
//! as what it does. Every fd the executor opens is close-on-exec: nothing leaks into a job.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A pipe: (read end, write end), both close-on-exec.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) }).map(drop)
}

/// A read or write system call's count, with EINTR retried.
fn counted(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One read; Ok(0) at end of file.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    counted(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// One write; returns how much went.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    counted(|| unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

pub fn write_all(fd: RawFd, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        let n = write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

pub fn kill(pid: libc::pid_t, signal: libc::c_int) {
    unsafe { libc::kill(pid, signal) };
}

/// The processes whose parent is `parent`, from /proc (gVisor has no `children` file).
pub fn children_of(parent: libc::pid_t) -> Vec<libc::pid_t> {
    let parent = parent.to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the command name's last ')': state, then the parent's pid.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == parent))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// Waits for `pid` (or any child, with -1). None when there is no such child or, with
/// `nohang`, none has ended yet.
pub fn wait(pid: libc::pid_t, nohang: bool) -> Option<(libc::pid_t, libc::c_int)> {
    let mut status = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, flags | libc::__WALL) };
        if r > 0 {
            return Some((r, status));
        }
        if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a string"))
}

pub fn mount(
    source: &str,
    target: &str,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let (source, target) = (cstring(source)?, cstring(target)?);
    let fstype = fstype.map(cstring).transpose()?;
    let data = data.map(cstring).transpose()?;
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    })
    .map(drop)
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    check(unsafe { libc::setrlimit(resource, &limit) }).map(drop)
}

/// Moves `fd` onto `target` (dup2 clears close-on-exec on the copy).
pub fn dup_onto(fd: RawFd, target: RawFd) -> io::Result<()> {
    check(unsafe { libc::dup2(fd, target) }).map(drop)
}

/// Time spent so far by this process's waited-for children (and theirs), in nanoseconds.
pub fn children_cpu_ns() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

pub fn monotonic_ms() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// How a waited-for status ended, in protocol terms.
pub fn exit_of(status: libc::c_int) -> crate::protocol::Exit {
    if libc::WIFSIGNALED(status) {
        crate::protocol::Exit::Signal(libc::WTERMSIG(status))
    } else {
        crate::protocol::Exit::Code(libc::WEXITSTATUS(status))
    }
}
