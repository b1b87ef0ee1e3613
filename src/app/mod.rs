//! The application layer: what a client can do, whichever API it speaks. REST, NATS
//! request/reply and every later adapter (Judge0, Piston, MCP) call [`Executions`] and
//! nothing below it, so that the job flow exists once:
//!
//! adapter (parse, answer) → [`Executions`] (validate, enqueue, wait) → queue (stream, records)
//! → a worker's actors → sandbox.
//!
//! - [`batch`]: many executions submitted, waited for and read as one.
//! - [`error`]: what can go wrong, and the one table mapping it to HTTP and NATS answers.
//! - [`request_id`]: the id that follows a request everywhere.

pub mod batch;
pub mod error;
pub mod request_id;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

pub use error::{AppError, ErrorBody, Thing};
pub use request_id::RequestId;

use crate::actors::NodeContext;
use crate::languages::LanguageInfo;
use crate::model::{ExecuteRequest, ExecutionRecord, Job};
use crate::queue::nodes::{self, NodeEntry};
use crate::queue::Cancelled;

/// How long a synchronous request may wait for a free worker, on top of its own timeout.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(60);
/// How long a cancel waits for the node running the job to confirm.
const CANCEL_PATIENCE: Duration = Duration::from_secs(10);

/// The one service behind every API. Cheap to clone.
#[derive(Clone)]
pub struct Executions {
    ctx: Arc<NodeContext>,
}

impl Executions {
    pub fn new(ctx: Arc<NodeContext>) -> Executions {
        Executions { ctx }
    }

    /// Validates and enqueues a request; returns the record as queued (or as it already
    /// stands, for a repeated execution id).
    pub async fn submit(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        let job = self.validate(request)?;
        self.enqueue(&job, request_id).await
    }

    /// Enqueues and waits for the final record. When the wait runs out, the record as it
    /// stands (queued or running) comes back instead, and the client can poll for the rest.
    pub async fn run(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        let job = self.validate(request)?;
        let queued = self.enqueue(&job, request_id).await?;
        self.wait(&job, queued).await
    }

    /// Waits for `queued` (the record of `job` as enqueued) to end, within the job's budget.
    async fn wait(&self, job: &Job, queued: ExecutionRecord) -> Result<ExecutionRecord, AppError> {
        if queued.status.is_final() {
            return Ok(queued);
        }
        let wait = job.time_budget() + QUEUE_ALLOWANCE;
        let latest = self.ctx.queue.waiters.wait_final(&job.id(), wait).await?;
        Ok(latest.unwrap_or(queued))
    }

    fn validate(&self, request: ExecuteRequest) -> Result<Job, AppError> {
        Ok(request.validate(&self.ctx.languages, &self.ctx.config.limits)?)
    }

    async fn enqueue(
        &self,
        job: &Job,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        tracing::Span::current().record("execution_id", tracing::field::display(job.id()));
        let record = self.ctx.queue.submit(job, request_id.as_str()).await?;
        tracing::info!(language = %job.language.name, "job queued");
        Ok(record)
    }

    pub async fn get(&self, id: &str) -> Result<ExecutionRecord, AppError> {
        let id = parse_id(id, Thing::Execution)?;
        match self.ctx.queue.records.get(&id).await? {
            Some(found) => Ok(found.record),
            None => Err(AppError::NotFound {
                what: Thing::Execution,
                id,
            }),
        }
    }

    /// Cancels; the answer says whether the job is now cancelled, or was already finished.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, AppError> {
        let id = parse_id(id, Thing::Execution)?;
        self.ctx
            .queue
            .cancel(&id, CANCEL_PATIENCE)
            .await?
            .ok_or(AppError::NotFound {
                what: Thing::Execution,
                id,
            })
    }

    /// The nodes alive in the cluster.
    pub async fn cluster(&self) -> Result<Vec<NodeEntry>, AppError> {
        Ok(nodes::list(&self.ctx.queue.nodes).await?)
    }

    /// What can run here, and under which limits.
    pub fn languages(&self) -> Vec<LanguageInfo> {
        self.ctx.languages.catalogue(&self.ctx.config.limits)
    }
}

fn parse_id(id: &str, what: Thing) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::BadId {
        what,
        given: id.to_string(),
    })
}
