//! One execution in its container: attach and start (unless the container was started ahead
//! of the job), feed stdin, capture output under the wall-clock deadline, collect how it
//! ended, and remove the container on every path.

use std::pin::Pin;
use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::query_parameters::{AttachContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::{FutureExt, Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::bootstrap::{self, CompileReport, Report};
use super::output::{Capped, Capture, Event};
use super::{Sandbox, SandboxError};
use crate::model::Job;

/// How the container's run ended, as seen by the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The program's streams closed on their own: it exited.
    Exited,
    /// The wall-clock deadline passed; the node killed the container.
    TimedOut,
    /// A stream passed its cap; the node killed the container.
    OutputLimit,
    /// A client cancelled the job; the node killed the container.
    Cancelled,
}

type Output = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// A started container whose bootstrap waits on stdin, with both ends of its attach stream.
pub struct Attached {
    pub id: String,
    output: Output,
    input: Input,
}

impl Attached {
    /// False when the container died while it waited (its output ended), or printed
    /// something, which a waiting bootstrap never does: it must not get a job.
    pub fn alive(&mut self) -> bool {
        self.output.next().now_or_never().is_none()
    }
}

/// The container a job runs in: created for it, or started ahead of it (from a pool).
pub enum Container {
    Cold(String),
    Warm(Attached),
}

impl Container {
    pub fn id(&self) -> &str {
        match self {
            Container::Cold(id) => id,
            Container::Warm(attached) => &attached.id,
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub ending: Ending,
    /// Exit code of the container's main process, as Docker saw it (only when `Exited`).
    pub container_exit: Option<i64>,
    pub oom_killed: bool,
    pub report: Option<Report>,
    /// The compile step's report, for compiled languages that got that far.
    pub compiled: Option<CompileReport>,
    /// The deadline passed while the compiler was still running.
    pub compile_timed_out: bool,
    /// The program's CPU limit, to tell a CPU-time kill from other signals.
    pub cpu_limit: Duration,
    pub stdout: Capped,
    pub stderr: Capped,
    /// Wall-clock time of the program itself (after any compile step).
    pub duration: Duration,
}

impl Sandbox {
    /// Runs `job` in its container, then removes the container whatever happened (in the
    /// background: the answer does not wait for it). The job is killed early if `cancel`
    /// completes.
    pub async fn execute(
        &self,
        container: Container,
        job: &Job,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, SandboxError> {
        let id = container.id().to_string();
        let result = async {
            let attached = match container {
                Container::Cold(id) => self.attach_and_start(&id).await?,
                Container::Warm(attached) => attached,
            };
            self.drive(attached, job, cancel).await
        }
        .await;
        self.remove_later(id);
        result
    }

    /// Attaches to a created container, then starts it (attached first, so that no early
    /// output is missed).
    pub async fn attach_and_start(&self, id: &str) -> Result<Attached, SandboxError> {
        let docker = self.docker();
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let AttachContainerResults { output, input } = docker
            .attach_container(id, Some(attach))
            .await
            .map_err(SandboxError::docker("attach container"))?;
        docker
            .start_container(id, None)
            .await
            .map_err(SandboxError::docker("start container"))?;
        Ok(Attached {
            id: id.to_string(),
            output,
            input,
        })
    }

    async fn drive(
        &self,
        attached: Attached,
        job: &Job,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, SandboxError> {
        let Attached { id, output, input } = attached;
        let id = id.as_str();
        let nonce = format!("{:016x}", rand::random::<u64>());
        let header = bootstrap::Header {
            nonce: &nonce,
            cpu_time: job.limits.cpu_time,
            nproc: (self.runtime_for(job) == Some(super::container::GVISOR))
                .then_some(job.limits.pids),
            compile: job
                .language
                .compile
                .as_deref()
                .map(|c| (c, job.limits.compile_timeout)),
            compile_cap: job.limits.compile_output.bytes(),
        };
        let mut files = vec![(job.language.file.as_str(), job.code.as_bytes())];
        files.extend(
            job.files
                .iter()
                .map(|f| (f.name.as_str(), f.content.as_slice())),
        );
        let payload = bootstrap::payload(&header, &files, job.stdin.as_bytes());
        let cap = job.limits.output.bytes() as usize;
        let mut capture = Capture::new(cap, &nonce, header.compile.is_some());

        let mut clock = Clock::new(&job.limits, capture.compiling());
        let ending = tokio::select! {
            pumped = pump(output, input, payload, &mut capture, &mut clock) => pumped?,
            _ = cancel => Ending::Cancelled,
        };
        let duration = clock.run_started.elapsed();
        if ending != Ending::Exited {
            // Kill now rather than let the job run on while we tidy up.
            self.remove(id).await;
        }
        let compile_timed_out = ending == Ending::TimedOut && capture.compiling();
        capture.strip_stdout_end();
        let Capture {
            stdout,
            mut stderr,
            compiled,
            ..
        } = capture;
        let report = bootstrap::take_report(&mut stderr.bytes, &nonce);
        stderr.limit_to(cap);
        // The report says whether the OOM killer fired; only without it is Docker asked.
        let (container_exit, oom_killed) = match (ending, report) {
            (
                Ending::Exited,
                Some(Report {
                    oom_kills: Some(n),
                    exit_code,
                    ..
                }),
            ) => (Some(exit_code), n > 0),
            (Ending::Exited, _) => self.exit_state(id).await?,
            _ => (None, false),
        };
        Ok(Outcome {
            ending,
            container_exit,
            oom_killed,
            report,
            compile_timed_out,
            compiled,
            cpu_limit: job.limits.cpu_time,
            stdout,
            stderr,
            duration,
        })
    }

    /// Waits for the container to stop, then reads its exit code and whether the kernel's OOM
    /// killer fired inside it.
    async fn exit_state(&self, id: &str) -> Result<(Option<i64>, bool), SandboxError> {
        let docker = self.docker();
        let wait = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        match docker.wait_container(id, Some(wait)).next().await {
            // bollard reports a non-zero exit as an error; that is still a normal stop.
            Some(Ok(_))
            | Some(Err(bollard::errors::Error::DockerContainerWaitError { .. }))
            | None => {}
            Some(Err(e)) => return Err(SandboxError::docker("wait container")(e)),
        }
        let inspect = docker
            .inspect_container(id, None)
            .await
            .map_err(SandboxError::docker("inspect container"))?;
        let state = inspect.state.unwrap_or_default();
        Ok((state.exit_code, state.oom_killed.unwrap_or(false)))
    }
}

/// The wall-clock deadline: the compile step's limit (plus grace for the bootstrap's own kill)
/// while compiling, then the job's timeout from the moment the program starts.
struct Clock {
    deadline: tokio::time::Instant,
    run_timeout: Duration,
    run_started: Instant,
}

/// Time the bootstrap has to report a compiler it killed at the compile limit.
const COMPILE_GRACE: Duration = Duration::from_secs(2);

impl Clock {
    fn new(limits: &crate::sandbox::limits::Limits, compiling: bool) -> Clock {
        let first = if compiling {
            limits.compile_timeout + COMPILE_GRACE
        } else {
            limits.timeout
        };
        Clock {
            deadline: tokio::time::Instant::now() + first,
            run_timeout: limits.timeout,
            run_started: Instant::now(),
        }
    }

    fn program_started(&mut self) {
        self.run_started = Instant::now();
        self.deadline = tokio::time::Instant::now() + self.run_timeout;
    }
}

/// Writes the payload to stdin (then closes it) while reading output into the capture, until
/// the output ends (`Exited`), a cap is passed (`OutputLimit`) or the deadline (`TimedOut`).
async fn pump(
    mut output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    mut input: impl AsyncWrite + Unpin,
    payload: Vec<u8>,
    capture: &mut Capture,
    clock: &mut Clock,
) -> Result<Ending, SandboxError> {
    let feed = async move {
        input.write_all(&payload).await?;
        input.shutdown().await
    };
    tokio::pin!(feed);
    let mut feeding = true;
    loop {
        let event = tokio::select! {
            fed = &mut feed, if feeding => {
                feeding = false;
                // A program may exit without reading its stdin; that closes the pipe early.
                if let Err(e) = fed {
                    tracing::debug!(error = %e, "stdin closed before all of it was written");
                }
                Event::More
            }
            _ = tokio::time::sleep_until(clock.deadline) => return Ok(Ending::TimedOut),
            item = output.next() => match item {
                None => return Ok(Ending::Exited),
                Some(Ok(LogOutput::StdOut { message })) => capture.stdout(&message),
                Some(Ok(LogOutput::StdErr { message })) => capture.stderr(&message),
                Some(Ok(_)) => Event::More,
                Some(Err(e)) => return Err(SandboxError::docker("read output")(e)),
            },
        };
        match event {
            Event::Overflow => return Ok(Ending::OutputLimit),
            Event::Compiled => clock.program_started(),
            // Done without waiting for the container to stop (tens of milliseconds).
            Event::More if capture.complete() => return Ok(Ending::Exited),
            Event::More => {}
        }
    }
}
