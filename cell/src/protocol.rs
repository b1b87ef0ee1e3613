//! The framed protocol between a node and the executor in a cell, over the container's attach
//! stream: the node writes frames to the executor's stdin, the executor writes frames to its
//! stdout. Its stderr carries nothing but the executor's own complaints, for the node's log.
//!
//! A frame is a 4-byte big-endian length, then that many bytes of MessagePack (named fields).
//! One attach serves the cell's whole life, so frames never rely on the stream ending.
//!
//! Order of a conversation: the executor says `Ready` once; then, per job, the node sends
//! `Run`, the executor sends any number of `Output` and `Usage`, at most one `Compiled`, for a
//! job that keeps its work dir one `Work`, and exactly one `Finished` (or `Failed`). `Kill`,
//! `Signal`, and for an interactive job `Stdin` and `Eof`, may come at any time during a job;
//! outside one they are ignored.

use serde::{Deserialize, Serialize};

/// Bumped whenever a message changes shape; `Ready` carries it so that a node never drives an
/// executor from another build.
pub const VERSION: u32 = 3;

/// Largest frame either side accepts: a job's files and stdin come in one frame.
pub const MAX_FRAME: usize = 64 << 20;

/// Largest work dir a job that keeps it may send back.
pub const MAX_WORK: u64 = 32 << 20;

/// How often a running program's usage is reported.
pub const USAGE_EVERY_MS: u64 = 250;

/// Where the executor is installed in every runtime image.
pub const EXECUTOR_PATH: &str = "/usr/local/lib/codebeaker/cell";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToCell {
    Run(Box<Job>),
    /// Stop the running job now (a client cancelled it, or the node is leaving).
    Kill,
    /// More of an interactive job's stdin, written to the program as it reads.
    Stdin(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The end of an interactive job's stdin: the program reads end of file once the rest is in.
    Eof,
    /// Send this signal to the program's process group (a client's SIGINT, say).
    Signal(i32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromCell {
    Ready {
        version: u32,
    },
    /// Program output, in the order it was read, never more than the job's cap per stream.
    Output {
        stream: Stream,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Compiled(CompileReport),
    /// The job's CPU and memory so far, every [`USAGE_EVERY_MS`] while the program runs.
    Usage {
        cpu_ns: u64,
        /// None where no cgroup is visible (gVisor).
        memory_bytes: Option<u64>,
    },
    /// The work dir after a successful compile step, for a job that keeps it: the program's
    /// test cases then run from these files, each in fresh namespaces of its own.
    Work {
        files: Vec<File>,
    },
    Finished(Report),
    /// The job could not be set up (namespaces, mounts, files): nothing of it ran.
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One job, as the node built it from its own language table and bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Written under /work before anything runs; names are relative and already checked.
    pub files: Vec<File>,
    #[serde(with = "serde_bytes")]
    pub stdin: Vec<u8>,
    /// A shell command run in /work before the program, for compiled languages.
    pub compile: Option<String>,
    /// The program's argv (looked up on PATH).
    pub run: Vec<String>,
    pub limits: JobLimits,
    pub isolation: Isolation,
    /// Compile only, then send the work dir back (`Work`) instead of running the program.
    #[serde(default)]
    pub keep_work: bool,
    /// The program's stdin stays open after `stdin` for `Stdin` frames, until `Eof`.
    #[serde(default)]
    pub interactive: bool,
    /// The program's stderr is its stdout.
    #[serde(default)]
    pub stderr_to_stdout: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
    /// Written with mode 0755 rather than 0644 (a compiled program).
    #[serde(default)]
    pub executable: bool,
}

/// Limits the executor keeps for one job. Memory, pids and CPU share are the cell's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JobLimits {
    /// Wall clock of the program, from its start.
    pub timeout_ms: u64,
    /// CPU of all the program's processes together.
    pub cpu_ms: u64,
    /// Cap on each of stdout and stderr.
    pub output_bytes: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    /// Size of each of the job's tmpfs: /work, /tmp and /dev/shm.
    pub tmpfs_bytes: u64,
    /// RLIMIT_NPROC, where no pids cgroup counts the job's processes (gVisor).
    pub nproc: Option<u64>,
    pub compile_timeout_ms: u64,
    /// Cap on each of the compile step's two streams.
    pub compile_output_bytes: u64,
    /// RLIMIT_STACK of the program's processes, when the request set one.
    #[serde(default)]
    pub stack_bytes: Option<u64>,
}

/// How much of the inner wall the cell's runtime allows. Every job gets fresh user, mount,
/// pid, network, IPC and UTS namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    /// Fresh tmpfs for /work, /tmp and /dev/shm, a fresh mqueue and the job's own procfs.
    /// gVisor allows no mount inside a user namespace: there the container's own tmpfs serve,
    /// so a container under gVisor serves one job only.
    pub fresh_mounts: bool,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell's convention, which records have always used: 128 + signal.
    pub fn shell_code(self) -> i64 {
        match self {
            Exit::Code(c) => i64::from(c),
            Exit::Signal(s) => 128 + i64::from(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileReport {
    /// None when the executor stopped the compiler at its time limit.
    pub exit: Option<Exit>,
    pub duration_ms: u64,
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl CompileReport {
    pub fn succeeded(&self) -> bool {
        self.exit == Some(Exit::Code(0))
    }
}

/// Why the executor ended a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ending {
    /// The program exited on its own (any code or signal).
    Exited,
    /// Wall clock, of the compile step or of the program.
    TimedOut,
    /// The CPU time of all the program's processes passed its limit.
    CpuTime,
    /// A stream passed its cap.
    OutputLimit,
    /// The node asked (`Kill`).
    Killed,
    /// The compile step failed or timed out; the program never ran.
    CompileFailed,
}

/// What the executor measured, from outside the job's namespaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub ending: Ending,
    /// The program's own exit; None when it was killed by the executor or never ran.
    pub exit: Option<Exit>,
    /// Wall clock of the program.
    pub wall_ms: u64,
    /// CPU of the program's processes; None where the runtime gives no way to measure it.
    pub cpu_ns: Option<u64>,
    /// Peak memory of the cell while the job ran; None where no cgroup is visible (gVisor).
    pub memory_peak_bytes: Option<u64>,
    /// Processes of the job the kernel's OOM killer ended.
    pub oom_kills: Option<u64>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("a frame could not be decoded: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("a frame could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// The bytes of one frame carrying `message`.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let body = rmp_serde::to_vec_named(message)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Collects stream bytes, however they are split, and yields whole frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is in.
    pub fn frame<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>, FrameError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(head.try_into().expect("four bytes")) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let message = rmp_serde::from_slice(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        Ok(Some(message?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            files: vec![File {
                name: "main.py".into(),
                content: b"print(1)\xff".to_vec(),
                executable: false,
            }],
            stdin: b"in".to_vec(),
            compile: None,
            run: vec!["python3".into(), "main.py".into()],
            limits: JobLimits {
                timeout_ms: 1000,
                cpu_ms: 1000,
                output_bytes: 64,
                file_size_bytes: 1 << 20,
                open_files: 64,
                tmpfs_bytes: 1 << 20,
                nproc: None,
                compile_timeout_ms: 0,
                compile_output_bytes: 0,
                stack_bytes: Some(8 << 20),
            },
            isolation: Isolation { fresh_mounts: true },
            keep_work: false,
            interactive: false,
            stderr_to_stdout: true,
        }
    }

    #[test]
    fn frames_survive_any_split_of_the_stream() {
        let messages = [
            ToCell::Run(Box::new(job())),
            ToCell::Stdin(b"more\xff".to_vec()),
            ToCell::Signal(2),
            ToCell::Eof,
            ToCell::Kill,
        ];
        let stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
        for split in 0..stream.len() {
            let mut decoder = Decoder::default();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                decoder.push(part);
                while let Some(m) = decoder.frame::<ToCell>().unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got, messages, "split at {split}");
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_it_is_buffered() {
        let mut decoder = Decoder::default();
        decoder.push(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decoder.frame::<FromCell>(),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        let mut decoder = Decoder::default();
        decoder.push(&[0, 0, 0, 2, 0xc1, 0xc1]);
        assert!(matches!(
            decoder.frame::<FromCell>(),
            Err(FrameError::Decode(_))
        ));
    }

    #[test]
    fn signals_read_as_the_shell_writes_them() {
        assert_eq!(Exit::Signal(9).shell_code(), 137);
        assert_eq!(Exit::Code(3).shell_code(), 3);
    }
}
