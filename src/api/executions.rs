//! What a client can do, shared by the REST routes and the NATS request/reply service: submit
//! executions (and wait), read, cancel them; list the cluster's nodes.

use std::time::Duration;

use uuid::Uuid;

use super::{ApiError, RequestId};
use crate::actors::NodeContext;
use crate::model::{ExecuteRequest, ExecutionRecord, Job};
use crate::queue::nodes::{self, NodeEntry};
use crate::queue::Cancelled;

/// How long a synchronous request may wait for a free worker, on top of its own timeout.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(60);
/// How long a cancel waits for the node running the job to confirm.
const CANCEL_PATIENCE: Duration = Duration::from_secs(10);

/// Validates and enqueues a request; returns the record as queued (or as it already stands,
/// for a repeated execution id).
pub async fn submit(
    ctx: &NodeContext,
    request: ExecuteRequest,
    request_id: &RequestId,
) -> Result<ExecutionRecord, ApiError> {
    let job = request.validate(&ctx.languages, &ctx.config.limits)?;
    enqueue(ctx, &job, request_id).await
}

async fn enqueue(
    ctx: &NodeContext,
    job: &Job,
    request_id: &RequestId,
) -> Result<ExecutionRecord, ApiError> {
    tracing::Span::current().record("execution_id", tracing::field::display(job.id()));
    let record = ctx.queue.submit(job, request_id.as_str()).await?;
    tracing::info!(language = %job.language.name, "job queued");
    Ok(record)
}

/// Enqueues and waits for the final record. When the wait runs out, the record as it stands
/// (queued or running) comes back instead, and the client can poll for the rest.
pub async fn run(
    ctx: &NodeContext,
    request: ExecuteRequest,
    request_id: &RequestId,
) -> Result<ExecutionRecord, ApiError> {
    let job = request.validate(&ctx.languages, &ctx.config.limits)?;
    let queued = enqueue(ctx, &job, request_id).await?;
    if queued.status.is_final() {
        return Ok(queued);
    }
    let wait = job.time_budget() + QUEUE_ALLOWANCE;
    let latest = ctx.queue.waiters.wait_final(&job.id(), wait).await?;
    Ok(latest.unwrap_or(queued))
}

pub async fn get(ctx: &NodeContext, id: &str) -> Result<ExecutionRecord, ApiError> {
    let id = parse_id(id)?;
    match ctx.queue.records.get(&id).await? {
        Some(found) => Ok(found.record),
        None => Err(ApiError::NotFound(id)),
    }
}

/// Cancels; the answer says whether the job is now cancelled, or was already finished.
pub async fn cancel(ctx: &NodeContext, id: &str) -> Result<Cancelled, ApiError> {
    let id = parse_id(id)?;
    ctx.queue
        .cancel(&id, CANCEL_PATIENCE)
        .await?
        .ok_or(ApiError::NotFound(id))
}

/// The nodes alive in the cluster.
pub async fn cluster(ctx: &NodeContext) -> Result<Vec<NodeEntry>, ApiError> {
    Ok(nodes::list(&ctx.queue.nodes).await?)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::BadId(id.to_string()))
}
