//! A live cell as the node holds it: a started container, the one attach stream to its
//! executor, and the frames going each way (the protocol is `codebeaker_cell::protocol`).

use std::pin::Pin;
use std::time::Duration;

use bollard::container::LogOutput;
use codebeaker_cell::protocol::{self, Decoder, FromCell, ToCell};
use futures::{FutureExt, Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::container::Shape;
use super::SandboxError;

pub(super) type Output =
    Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub(super) type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// How long a new cell's executor has to say it is ready.
const HANDSHAKE: Duration = Duration::from_secs(30);

pub struct Cell {
    pub id: String,
    pub shape: Shape,
    output: Output,
    input: Input,
    frames: Decoder,
    /// Jobs this cell has served, and how many it may serve before it is replaced.
    jobs: u32,
    max_jobs: u32,
    /// The executor broke the protocol, went silent, or the cell was hit by an OOM kill.
    broken: bool,
}

impl Cell {
    pub(super) fn new(
        id: String,
        shape: Shape,
        output: Output,
        input: Input,
        max_jobs: u32,
    ) -> Cell {
        Cell {
            id,
            shape,
            output,
            input,
            frames: Decoder::default(),
            jobs: 0,
            max_jobs,
            broken: false,
        }
    }

    /// Waits for the executor's `Ready` and checks that it speaks this node's protocol.
    pub(super) async fn handshake(&mut self) -> Result<(), SandboxError> {
        match tokio::time::timeout(HANDSHAKE, self.next()).await {
            Ok(Ok(FromCell::Ready { version })) if version == protocol::VERSION => Ok(()),
            Ok(Ok(FromCell::Ready { version })) => Err(SandboxError::Protocol(format!(
                "the cell's executor speaks protocol {version}, this node {}; rebuild the images (scripts/setup.sh)",
                protocol::VERSION
            ))),
            Ok(Ok(other)) => Err(SandboxError::Protocol(format!("expected Ready, got {other:?}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SandboxError::Protocol("the executor did not start in time".into())),
        }
    }

    pub(super) async fn send(&mut self, message: &ToCell) -> Result<(), SandboxError> {
        let frame = protocol::encode(message).map_err(SandboxError::Frame)?;
        let written = async {
            self.input.write_all(&frame).await?;
            self.input.flush().await
        };
        written
            .await
            .map_err(|e| self.broke(SandboxError::Stdin(e)))
    }

    /// The executor's next message. Its stderr carries only its own complaints: logged.
    pub(super) async fn next(&mut self) -> Result<FromCell, SandboxError> {
        loop {
            match self.frames.frame() {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => return Err(self.broke(SandboxError::Frame(e))),
            }
            match self.output.next().await {
                Some(Ok(LogOutput::StdOut { message })) => self.frames.push(&message),
                Some(Ok(LogOutput::StdErr { message })) => {
                    tracing::warn!(cell = %self.id, "executor: {}", String::from_utf8_lossy(&message).trim_end());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(self.broke(SandboxError::docker("read output")(e))),
                None => return Err(self.broke(SandboxError::CellGone)),
            }
        }
    }

    fn broke(&mut self, e: SandboxError) -> SandboxError {
        self.broken = true;
        e
    }

    pub(super) fn job_started(&mut self) {
        self.jobs += 1;
    }

    /// The cell must not serve another job.
    pub(super) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// True when the cell should be removed rather than serve again.
    pub fn spent(&self) -> bool {
        self.broken || self.jobs >= self.max_jobs
    }

    /// False when the cell died while it waited, or said something unasked, which an idle
    /// executor never does: it must not get a job.
    pub fn alive(&mut self) -> bool {
        !self.broken && self.output.next().now_or_never().is_none()
    }
}
