//! One execution in a created container: attach, start, feed stdin, capture output under the
//! wall-clock deadline, collect how it ended, and remove the container on every path.

use std::time::{Duration, Instant};

use bollard::container::{AttachContainerResults, LogOutput};
use bollard::query_parameters::{AttachContainerOptionsBuilder, WaitContainerOptionsBuilder};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::bootstrap::{self, Report};
use super::output::Capped;
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
    pub stdout: Capped,
    pub stderr: Capped,
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
        let started = Instant::now();

        let nonce = format!("{:016x}", rand::random::<u64>());
        let file = (job.language.file.as_str(), job.code.as_bytes());
        let payload = bootstrap::payload(&nonce, &[file], job.stdin.as_bytes());
        let cap = job.limits.output.bytes() as usize;
        let mut stdout = Capped::new(cap);
        let mut stderr = Capped::new(cap + bootstrap::REPORT_ROOM);

        let ending = tokio::select! {
            pumped = tokio::time::timeout(
                job.limits.timeout,
                pump(output, input, payload, &mut stdout, &mut stderr),
            ) => pumped.unwrap_or(Ok(Ending::TimedOut))?,
            _ = cancel => Ending::Cancelled,
        };
        let duration = started.elapsed();
        let (container_exit, oom_killed) = match ending {
            Ending::Exited => self.exit_state(id).await?,
            // Kill now rather than let the job run on while we tidy up.
            Ending::TimedOut | Ending::OutputLimit | Ending::Cancelled => {
                self.remove(id).await;
                (None, false)
            }
        };
        let report = bootstrap::take_report(&mut stderr.bytes, &nonce);
        stderr.limit_to(cap);
        Ok(Outcome {
            ending,
            container_exit,
            oom_killed,
            report,
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

/// Writes the payload to stdin (then closes it) while reading output into the caps, until the
/// output ends (`Exited`) or a cap is passed (`OutputLimit`).
async fn pump(
    mut output: impl Stream<Item = Result<LogOutput, bollard::errors::Error>> + Unpin,
    mut input: impl AsyncWrite + Unpin,
    payload: Vec<u8>,
    stdout: &mut Capped,
    stderr: &mut Capped,
) -> Result<Ending, SandboxError> {
    let feed = async move {
        input.write_all(&payload).await?;
        input.shutdown().await
    };
    tokio::pin!(feed);
    let mut feeding = true;
    loop {
        tokio::select! {
            fed = &mut feed, if feeding => {
                feeding = false;
                // A program may exit without reading its stdin; that closes the pipe early.
                if let Err(e) = fed {
                    tracing::debug!(error = %e, "stdin closed before all of it was written");
                }
            }
            item = output.next() => match item {
                None => return Ok(Ending::Exited),
                Some(Ok(LogOutput::StdOut { message })) if stdout.push(&message) => return Ok(Ending::OutputLimit),
                Some(Ok(LogOutput::StdErr { message })) if stderr.push(&message) => return Ok(Ending::OutputLimit),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(SandboxError::docker("read output")(e)),
            },
        }
    }
}
