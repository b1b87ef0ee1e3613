//! The executor: the main process of a cell. It reads jobs from its stdin, runs each in fresh
//! namespaces under its own init ([`jail`]), streams the output back, keeps the wall-clock and
//! summed CPU limits, measures ([`meter`]) and reports, all from outside the job's reach.
//!
//! - [`jail`]: the job's init: mounts, masks, files, the compile step and the program.
//! - [`filter`]: the seccomp filter on the job's programs.
//! - [`meter`]: CPU and memory of the job, from the cell's cgroup or the kernel's accounting.
//! - [`sys`]: the system calls, checked.
//!
//! It is single-threaded on purpose: it forks and clones, and poll(2) over a handful of pipes
//! is all the concurrency one job at a time needs.

mod filter;
mod jail;
mod meter;
mod sys;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::protocol::{
    self, CompileReport, Decoder, Ending, Exit, FromCell, Job, Report, Stream, ToCell,
};
use meter::Meter;

/// How often the executor looks at the job's CPU and memory while waiting for output.
const TICK_MS: i32 = 10;
/// The per-process RLIMIT_CPU fires at the limit; the sum over processes is held a little
/// later, so that a single process still ends with its own SIGXCPU.
const CPU_MARGIN_MS: u64 = 100;
/// Time the job's init has to set up the namespaces and files before the executor gives up.
const SETUP_MS: u64 = 5_000;
const CHUNK: usize = 64 << 10;

/// The executor's entry point.
pub fn main() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("codebeaker-cell: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn serve() -> io::Result<()> {
    // Not dumpable: a job that got out of its namespaces still could not read this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    let cell = Cell {
        filter: filter::program_filter().map_err(io::Error::other)?,
        env: environment()?,
        sources: meter::Sources::find(),
    };
    let mut link = Link::default();
    link.send(&FromCell::Ready {
        version: protocol::VERSION,
    })?;
    while let Some(message) = link.receive()? {
        if let ToCell::Run(job) = message {
            let answer = run(&job, &mut link, &cell)?;
            link.send(&answer)?;
        }
        // The executor is PID 1 of the container: whatever ended is reaped here.
        while sys::wait(-1, true).is_some() {}
    }
    Ok(())
}

/// What every job of this cell shares, prepared once at start.
struct Cell {
    filter: libseccomp::ScmpFilterContext,
    env: Vec<CString>,
    sources: meter::Sources,
}

/// The environment programs get: the cell's (the node's allow-list and the image's), in /work.
fn environment() -> io::Result<Vec<CString>> {
    let mut env: Vec<CString> = std::env::vars()
        .filter(|(k, _)| k != "PWD")
        .map(|(k, v)| sys::cstring(&format!("{k}={v}")))
        .collect::<io::Result<_>>()?;
    env.push(sys::cstring(&format!("PWD={}", jail::WORK))?);
    Ok(env)
}

/// The frames to and from the node: stdin and stdout of the executor.
#[derive(Default)]
struct Link {
    frames: Decoder,
    closed: bool,
}

impl Link {
    fn send(&self, message: &FromCell) -> io::Result<()> {
        let frame = protocol::encode(message).map_err(io::Error::other)?;
        sys::write_all(1, &frame)
    }

    /// Blocks for the next message; None when the node closed the stream.
    fn receive(&mut self) -> io::Result<Option<ToCell>> {
        loop {
            if let Some(message) = self.frames.frame().map_err(io::Error::other)? {
                return Ok(Some(message));
            }
            if self.closed || !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Reads what is there; false at end of file.
    fn fill(&mut self) -> io::Result<bool> {
        let mut buf = vec![0; CHUNK];
        let n = sys::read(0, &mut buf)?;
        self.frames.push(&buf[..n]);
        self.closed = n == 0;
        Ok(n > 0)
    }
}

/// The executor's ends of one job's pipes, and the ends it hands to init.
struct Pipes {
    notes: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    compile_stdout: Option<OwnedFd>,
    compile_stderr: Option<OwnedFd>,
    /// For a job that keeps its work dir: where init sends it.
    work: Option<OwnedFd>,
}

fn run(job: &Job, link: &mut Link, cell: &Cell) -> io::Result<FromCell> {
    let programs = match programs(job, &cell.filter, &cell.env) {
        Ok(p) => p,
        Err(e) => {
            return Ok(FromCell::Failed {
                reason: e.to_string(),
            })
        }
    };
    let (notes_r, notes_w) = sys::pipe()?;
    let (stdin_r, stdin_w) = sys::pipe()?;
    let (out_r, out_w) = sys::pipe()?;
    let (err_r, err_w) = sys::pipe()?;
    let (cout_r, cout_w) = sys::pipe()?;
    let (cerr_r, cerr_w) = sys::pipe()?;
    let (work_r, work_w) = sys::pipe()?;
    let ends = jail::Ends {
        ids: unsafe { (libc::getuid(), libc::getgid()) },
        notes: notes_w.as_raw_fd(),
        stdin: stdin_r.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        compile_stdout: cout_w.as_raw_fd(),
        compile_stderr: cerr_w.as_raw_fd(),
        work: work_w.as_raw_fd(),
        executor_ends: [
            &notes_r, &stdin_w, &out_r, &err_r, &cout_r, &cerr_r, &work_r,
        ]
        .iter()
        .map(|fd| fd.as_raw_fd())
        .collect(),
    };
    let meter = Meter::start(cell.sources);
    let pid = clone_init(job, &ends, &programs)?;
    drop((notes_w, stdin_r, out_w, err_w, cout_w, cerr_w, work_w));
    let pipes = Pipes {
        notes: notes_r,
        stdin: (!job.stdin.is_empty() || job.interactive).then_some(stdin_w),
        stdout: Some(out_r),
        stderr: Some(err_r),
        compile_stdout: job.compile.as_ref().map(|_| cout_r),
        compile_stderr: job.compile.as_ref().map(|_| cerr_r),
        work: job.keep_work.then_some(work_r),
    };
    for fd in [
        Some(&pipes.notes),
        pipes.stdin.as_ref(),
        pipes.stdout.as_ref(),
        pipes.stderr.as_ref(),
        pipes.compile_stdout.as_ref(),
        pipes.compile_stderr.as_ref(),
        pipes.work.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        sys::set_nonblocking(fd)?;
    }
    Watch::new(job, pid, meter, pipes).run(link)
}

fn programs<'a>(
    job: &Job,
    filter: &'a libseccomp::ScmpFilterContext,
    env: &'a [CString],
) -> io::Result<jail::Programs<'a>> {
    let argv = |args: &[&str]| {
        args.iter()
            .map(|a| sys::cstring(a))
            .collect::<io::Result<Vec<_>>>()
    };
    let run: Vec<&str> = job.run.iter().map(String::as_str).collect();
    if run.is_empty() && !job.keep_work {
        return Err(io::Error::other("the job has no run command"));
    }
    Ok(jail::Programs {
        filter,
        env,
        compile: job
            .compile
            .as_deref()
            .map(|c| argv(&["/bin/sh", "-c", c]))
            .transpose()?,
        run: argv(&run)?,
    })
}

/// Starts the job's init in fresh namespaces.
fn clone_init(job: &Job, ends: &jail::Ends, programs: &jail::Programs) -> io::Result<libc::pid_t> {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // The child must be dumpable until it has written its id maps: the /proc files of a
    // process that is not are owned by root, which an ordinary user cannot write. No job runs
    // at this moment; init turns it off again once the maps are in.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    // clone without CLONE_VM and without a stack behaves as fork: the child goes on from here
    // on a copy of this stack.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid != 0 {
        unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    }
    match pid {
        0 => jail::init(job, ends, programs),
        p if p < 0 => Err(io::Error::last_os_error()),
        p => Ok(p as libc::pid_t),
    }
}

/// One job from the executor's side: its pipes, clocks and meter, until init is gone.
struct Watch<'a> {
    job: &'a Job,
    init: libc::pid_t,
    meter: Meter,
    pipes: Pipes,
    deadline: u64,
    started: Option<u64>,
    /// Stdin not yet written to the program, and whether more may come (interactive, no Eof).
    stdin: Vec<u8>,
    stdin_more: bool,
    /// When the next `Usage` goes out, while the program runs.
    next_usage: u64,
    notes: Vec<u8>,
    out_left: u64,
    err_left: u64,
    compile: [Vec<u8>; 2],
    compile_total: [u64; 2],
    /// While the compiler runs: when it started.
    compile_started: Option<u64>,
    ending: Option<Ending>,
    exit: Option<Exit>,
    finished_at: Option<u64>,
    failure: Option<String>,
    truncated: [bool; 2],
    compiled: Option<CompileReport>,
    /// What init sent of the work dir, and whether it said all of it is in.
    work: Vec<u8>,
    kept: bool,
}

impl<'a> Watch<'a> {
    fn new(job: &'a Job, init: libc::pid_t, meter: Meter, pipes: Pipes) -> Self {
        let now = sys::monotonic_ms();
        let l = &job.limits;
        Watch {
            job,
            init,
            meter,
            pipes,
            // Until init says the compiler or the program started: its set-up time.
            deadline: now + SETUP_MS,
            started: None,
            stdin: job.stdin.clone(),
            stdin_more: job.interactive,
            next_usage: u64::MAX,
            notes: Vec::new(),
            out_left: l.output_bytes,
            err_left: l.output_bytes,
            compile: [Vec::new(), Vec::new()],
            compile_total: [0, 0],
            compile_started: None,
            ending: None,
            exit: None,
            finished_at: None,
            failure: None,
            truncated: [false, false],
            compiled: None,
            work: Vec::new(),
            kept: false,
        }
    }

    fn run(mut self, link: &mut Link) -> io::Result<FromCell> {
        let status = loop {
            self.poll(link)?;
            self.check_limits();
            self.send_compiled(link)?;
            self.send_usage(link)?;
            if let Some((_, status)) = sys::wait(self.init, true) {
                break status;
            }
        };
        // Init is gone and its namespace with it: what is left in the pipes is all there is.
        self.read_notes(link)?;
        self.drain(link)?;
        let until = sys::monotonic_ms() + 1000;
        while self.pipes.work.is_some() && sys::monotonic_ms() < until {
            self.read_work();
        }
        if let Some(reason) = self.failure.take() {
            return Ok(FromCell::Failed { reason });
        }
        if self.kept && self.ending.is_none() {
            match rmp_serde::from_slice(&self.work) {
                Ok(files) => link.send(&FromCell::Work { files })?,
                Err(e) => {
                    let reason = format!("the work dir came back unreadable: {e}");
                    return Ok(FromCell::Failed { reason });
                }
            }
        } else if self.ending.is_none() && self.exit.is_none() && !self.oom_killed() {
            let reason = format!("the job's init ended early ({:?})", sys::exit_of(status));
            return Ok(FromCell::Failed { reason });
        }
        Ok(FromCell::Finished(self.report()))
    }

    fn report(&mut self) -> Report {
        self.meter.tick();
        self.meter.refresh_cpu();
        let now = sys::monotonic_ms();
        let ran = self
            .started
            .map_or(0, |s| self.finished_at.unwrap_or(now).saturating_sub(s));
        Report {
            ending: self.ending.unwrap_or(Ending::Exited),
            exit: self.exit,
            wall_ms: ran,
            cpu_ns: self.started.map(|_| self.meter.cpu_ns()),
            memory_peak_bytes: self.meter.peak(),
            oom_kills: self.meter.oom_kills(),
            stdout_truncated: self.truncated[0],
            stderr_truncated: self.truncated[1],
        }
    }

    /// The cgroup's OOM killer struck during the job. It may pick init rather than the
    /// program (pages in the job's tmpfs count against the cgroup but against no process),
    /// so an init gone by SIGKILL is then the job's memory limit, reported as such, not a
    /// failure of the executor. Seen under load with `/dev/shm` filled past the limit.
    fn oom_killed(&self) -> bool {
        self.meter.oom_kills().unwrap_or(0) > 0
    }

    /// Ends the job for `why`, unless it already ended.
    fn stop(&mut self, why: Ending) {
        if self.ending.is_none() && self.exit.is_none() {
            self.ending = Some(why);
            self.finished_at = Some(sys::monotonic_ms());
            sys::kill(self.init, libc::SIGKILL);
        }
    }

    /// The program's CPU and memory so far, every `USAGE_EVERY_MS` while it runs.
    fn send_usage(&mut self, link: &mut Link) -> io::Result<()> {
        let now = sys::monotonic_ms();
        if now < self.next_usage || self.finished_at.is_some() {
            return Ok(());
        }
        self.next_usage = now + protocol::USAGE_EVERY_MS;
        link.send(&FromCell::Usage {
            cpu_ns: self.meter.cpu_ns(),
            memory_bytes: self.meter.memory_now(),
        })
    }

    fn check_limits(&mut self) {
        self.meter.tick();
        if sys::monotonic_ms() >= self.deadline {
            let compiling = self.compile_started.is_some();
            // Kill first: a failed compile report marks the job ended, and `stop` leaves
            // ended jobs alone.
            self.stop(Ending::TimedOut);
            if compiling {
                self.compiled(None);
            }
        }
        if self.started.is_some()
            && self.meter.cpu_ns() / 1_000_000 >= self.job.limits.cpu_ms + CPU_MARGIN_MS
        {
            self.stop(Ending::CpuTime);
        }
    }

    fn poll(&mut self, link: &mut Link) -> io::Result<()> {
        let mut fds = vec![
            poll_fd(0, libc::POLLIN),
            poll_fd(self.pipes.notes.as_raw_fd(), libc::POLLIN),
        ];
        let outputs = self.outputs();
        fds.extend(outputs.iter().map(|&(fd, _)| poll_fd(fd, libc::POLLIN)));
        let work_at = self.pipes.work.as_ref().map(|fd| {
            fds.push(poll_fd(fd.as_raw_fd(), libc::POLLIN));
            fds.len() - 1
        });
        // A pipe with nothing to write would be ready at every poll.
        let stdin_at = self
            .pipes
            .stdin
            .as_ref()
            .filter(|_| !self.stdin.is_empty())
            .map(|fd| {
                fds.push(poll_fd(fd.as_raw_fd(), libc::POLLOUT));
                fds.len() - 1
            });
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, TICK_MS) };
        if ready <= 0 {
            return self.take_frames(link);
        }
        let ready = |i: usize| fds[i].revents != 0;
        if ready(0) && !link.closed {
            link.fill()?;
            if link.closed {
                // The node is gone: nobody wants this job any more.
                self.stop(Ending::Killed);
            }
        }
        self.take_frames(link)?;
        if ready(1) {
            self.read_notes(link)?;
        }
        for (i, (fd, which)) in outputs.into_iter().enumerate() {
            if ready(2 + i) {
                self.read_output(fd, which, link)?;
            }
        }
        if work_at.is_some_and(ready) {
            self.read_work();
        }
        if stdin_at.is_some_and(ready) {
            self.feed_stdin();
        }
        Ok(())
    }

    /// Reads what init sent of the work dir; past the cap, the job fails.
    fn read_work(&mut self) {
        let Some(fd) = &self.pipes.work else { return };
        let mut buf = vec![0; CHUNK];
        match sys::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => self.pipes.work = None,
            Ok(n) => {
                self.work.extend_from_slice(&buf[..n]);
                // The cap is on the files' bytes; the encoding adds names and lengths.
                if self.work.len() as u64 > protocol::MAX_WORK + (1 << 20) {
                    self.failure = Some("the compiled work dir is too large".into());
                    self.pipes.work = None;
                    self.stop(Ending::Killed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => self.pipes.work = None,
        }
    }

    /// Acts on what the node sent during the job, including frames that came in one read
    /// with the job's own `Run`.
    fn take_frames(&mut self, link: &mut Link) -> io::Result<()> {
        while let Some(message) = link.frames.frame::<ToCell>().map_err(io::Error::other)? {
            match message {
                ToCell::Kill => self.stop(Ending::Killed),
                ToCell::Stdin(bytes) if self.stdin_more => self.stdin.extend_from_slice(&bytes),
                ToCell::Eof => {
                    self.stdin_more = false;
                    self.close_stdin_when_done();
                }
                ToCell::Signal(signal) => self.signal_program(signal),
                ToCell::Stdin(_) | ToCell::Run(_) => {}
            }
        }
        Ok(())
    }

    /// Signals the program's process group (it is a session leader: see `jail::spawn`). Only
    /// while it runs: the compiler is not the client's to signal.
    fn signal_program(&self, signal: i32) {
        if self.started.is_none() || self.finished_at.is_some() {
            return;
        }
        for pid in sys::children_of(self.init) {
            sys::kill(-pid, signal);
        }
    }

    /// Closing our end is the program's end of file: once all of stdin is written and no
    /// more can come.
    fn close_stdin_when_done(&mut self) {
        if self.stdin.is_empty() && !self.stdin_more {
            self.pipes.stdin = None;
        }
    }

    /// The output pipes still open: (fd, index into compile (0-1) or program (2-3) streams).
    fn outputs(&self) -> Vec<(RawFd, usize)> {
        [
            &self.pipes.compile_stdout,
            &self.pipes.compile_stderr,
            &self.pipes.stdout,
            &self.pipes.stderr,
        ]
        .iter()
        .enumerate()
        .filter_map(|(i, fd)| fd.as_ref().map(|fd| (fd.as_raw_fd(), i)))
        .collect()
    }

    fn feed_stdin(&mut self) {
        let Some(fd) = &self.pipes.stdin else { return };
        match sys::write(fd.as_raw_fd(), &self.stdin) {
            Ok(n) => drop(self.stdin.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The program closed its stdin (or died): what it did not read is dropped.
            Err(_) => {
                self.stdin.clear();
                self.stdin_more = false;
            }
        }
        self.close_stdin_when_done();
    }

    fn read_output(&mut self, fd: RawFd, which: usize, link: &mut Link) -> io::Result<()> {
        let mut buf = vec![0; CHUNK];
        let n = match sys::read(fd, &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(_) => 0,
        };
        if n == 0 {
            self.close_output(which);
            return Ok(());
        }
        let chunk = &buf[..n];
        if which < 2 {
            // The compile step's output is kept apart, capped, and sent with its report.
            let cap = self.job.limits.compile_output_bytes as usize;
            let keep = cap.saturating_sub(self.compile[which].len()).min(n);
            self.compile[which].extend_from_slice(&chunk[..keep]);
            self.compile_total[which] += n as u64;
            return Ok(());
        }
        let stream = if which == 2 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let left = if which == 2 {
            &mut self.out_left
        } else {
            &mut self.err_left
        };
        let keep = (*left).min(n as u64) as usize;
        *left -= keep as u64;
        if keep > 0 {
            link.send(&FromCell::Output {
                stream,
                bytes: chunk[..keep].to_vec(),
            })?;
        }
        if keep < n {
            self.truncated[which - 2] = true;
            self.stop(Ending::OutputLimit);
        }
        Ok(())
    }

    fn close_output(&mut self, which: usize) {
        let slot = match which {
            0 => &mut self.pipes.compile_stdout,
            1 => &mut self.pipes.compile_stderr,
            2 => &mut self.pipes.stdout,
            _ => &mut self.pipes.stderr,
        };
        *slot = None;
    }

    fn read_notes(&mut self, link: &mut Link) -> io::Result<()> {
        let mut buf = [0u8; 512];
        loop {
            match sys::read(self.pipes.notes.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => self.notes.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        while let Some(end) = self.notes.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.notes.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]).into_owned();
            self.on_note(&line, link)?;
        }
        Ok(())
    }

    fn on_note(&mut self, line: &str, link: &mut Link) -> io::Result<()> {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let status = || rest.parse::<libc::c_int>().map(sys::exit_of).ok();
        match word {
            "compiling" => {
                let now = sys::monotonic_ms();
                self.compile_started = Some(now);
                self.deadline = now + self.job.limits.compile_timeout_ms;
            }
            // Unless the executor already stopped the compiler at its limit and reported that.
            "compiled" if self.compile_started.is_some() => {
                // The compiler and everything it started are dead: its pipes end now.
                self.drain_outputs(link, |which| which < 2)?;
                self.compiled(status());
                if self.job.keep_work {
                    // Packing the work dir takes what set-up takes, not the compiler's time.
                    self.deadline = sys::monotonic_ms() + SETUP_MS;
                }
            }
            "kept" => {
                self.kept = true;
                self.finished_at = Some(sys::monotonic_ms());
            }
            // A program that starts after the executor ended the job never counts as started.
            "started" if self.ending.is_none() => {
                let now = sys::monotonic_ms();
                self.started = Some(now);
                self.next_usage = now + protocol::USAGE_EVERY_MS;
                self.deadline = now + self.job.limits.timeout_ms;
                self.meter.restart_cpu();
            }
            "compiled" | "started" => {}
            "exited" => {
                if self.ending.is_none() {
                    self.exit = status();
                    self.finished_at = Some(sys::monotonic_ms());
                }
            }
            _ => self.failure = Some(rest.to_string()),
        }
        Ok(())
    }

    /// The compile step ended (`exit`) or was stopped at its limit (None).
    fn compiled(&mut self, exit: Option<Exit>) {
        let report = CompileReport {
            exit,
            duration_ms: self
                .compile_started
                .take()
                .map_or(0, |started| sys::monotonic_ms() - started),
            stdout: std::mem::take(&mut self.compile[0]),
            stderr: std::mem::take(&mut self.compile[1]),
            stdout_truncated: self.compile_total[0] > self.job.limits.compile_output_bytes,
            stderr_truncated: self.compile_total[1] > self.job.limits.compile_output_bytes,
        };
        if !report.succeeded() {
            self.ending = Some(Ending::CompileFailed);
            self.finished_at = Some(sys::monotonic_ms());
        }
        self.compiled = Some(report);
    }

    /// Reads the open output pipes that `wanted` picks (by stream index) until their writers
    /// are gone, which is at once when every process that held them is dead; one second at most.
    fn drain_outputs(&mut self, link: &mut Link, wanted: fn(usize) -> bool) -> io::Result<()> {
        let until = sys::monotonic_ms() + 1000;
        loop {
            let open: Vec<_> = self
                .outputs()
                .into_iter()
                .filter(|&(_, w)| wanted(w))
                .collect();
            if open.is_empty() || sys::monotonic_ms() >= until {
                return Ok(());
            }
            for (fd, which) in open {
                self.read_output(fd, which, link)?;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// After init is gone: the rest of the program's output, and the compile report.
    fn drain(&mut self, link: &mut Link) -> io::Result<()> {
        self.drain_outputs(link, |_| true)?;
        self.send_compiled(link)
    }

    /// The compile report goes out as soon as it is known: the node's own clock then moves on
    /// to the program's time limit.
    fn send_compiled(&mut self, link: &mut Link) -> io::Result<()> {
        match self.compiled.take() {
            Some(report) => link.send(&FromCell::Compiled(report)),
            None => Ok(()),
        }
    }
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}
