//! One execution in a created container: attach, start, feed stdin, capture output under the
//! wall-clock deadline, collect how it ended, and remove the container on every path.

use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::query_parameters::{AttachContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::{Stream, StreamExt};
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
    /// Runs `job` in the created container `id`, then removes the container whatever happened.
    /// The job is killed early if `cancel` completes.
    pub async fn execute(
        &self,
        id: &str,
        job: &Job,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, SandboxError> {
        let result = self.drive(id, job, cancel).await;
        self.remove(id).await;
        result
    }

    async fn drive(
        &self,
        id: &str,
        job: &Job,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, SandboxError> {
        let docker = self.docker();
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        // Attach before start so that no early output is missed.
        let AttachContainerResults { output, input } = docker
            .attach_container(id, Some(attach))
            .await
            .map_err(SandboxError::docker("attach container"))?;
        docker
            .start_container(id, None)
            .await
            .map_err(SandboxError::docker("start container"))?;
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
        let (container_exit, oom_killed) = match ending {
            Ending::Exited => self.exit_state(id).await?,
            // Kill now rather than let the job run on while we tidy up.
            Ending::TimedOut | Ending::OutputLimit | Ending::Cancelled => {
                self.remove(id).await;
                (None, false)
            }
        };
        let compile_timed_out = ending == Ending::TimedOut && capture.compiling();
        let Capture {
            stdout,
            mut stderr,
            compiled,
            ..
        } = capture;
        let report = bootstrap::take_report(&mut stderr.bytes, &nonce);
        stderr.limit_to(cap);
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
            Event::More => {}
        }
    }
}
