//! WorkerActor: runs one job at a time, from delivery to stored record and ack, then asks for
//! the next. Delivery is at-least-once, so the job's record decides: a job already final is
//! acked without running again, and one running on a node that still holds it is left to
//! that node.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::metrics::MetricsMsg;
use super::runtime::RuntimeMsg;
use super::supervisor::SupervisorMsg;
use super::{lookup, names, Stop, WorkerContext};
use crate::model::{ExecutionRecord, Job, Status};
use crate::queue::jetstream::Delivery;
use crate::queue::nodes::{self, Holder};
use crate::queue::records::Versioned;
use crate::queue::QueueError;

/// A job and the delivery it came in.
pub struct Assignment {
    pub job: Box<Job>,
    pub delivery: Delivery,
}

pub enum WorkerMsg {
    Run(Box<Assignment>),
    /// The Supervisor's health check of an idle worker.
    Ping(RpcReplyPort<()>),
}

pub struct WorkerActor;

pub struct WorkerState {
    ctx: Arc<WorkerContext>,
    supervisor: ActorRef<SupervisorMsg>,
}

/// How long a finished job's worker keeps trying to store its record.
const STORE_PATIENCE: Duration = Duration::from_secs(20);
/// The pause before a job whose record could not be read or stored is delivered again, times
/// its delivery count.
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// How long a container create may take before the job is failed.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

impl Actor for WorkerActor {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (Arc<WorkerContext>, ActorRef<SupervisorMsg>);

    async fn pre_start(
        &self,
        _: ActorRef<WorkerMsg>,
        (ctx, supervisor): Self::Arguments,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState { ctx, supervisor })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let assignment = match msg {
            WorkerMsg::Run(assignment) => assignment,
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(());
                return Ok(());
            }
        };
        let Assignment { job, delivery } = *assignment;
        let ack_wait = Duration::from_secs(state.ctx.node.config.nats.ack_wait_secs);
        // Every log line about this job carries its execution id and the id of the request
        // that submitted it, so one grep follows a job from the API node to this one.
        let span = tracing::info_span!(
            "job",
            execution_id = %job.id(),
            request_id = delivery.request_id().unwrap_or("-"),
            language = %job.language.name
        );
        // In-progress acks run beside the job and stop with it (also if this actor is killed).
        let outcome = async {
            tracing::info!(attempt = delivery.attempt(), "job taken");
            let outcome = tokio::select! {
                outcome = process(&state.ctx, &job, &delivery) => outcome,
                never = keep_alive(&delivery, ack_wait) => match never {},
            };
            if let Ok(Processed::Finished(record)) = &outcome {
                tracing::info!(
                    status = record.status.as_str(),
                    duration_ms = record.duration_ms,
                    "job finished"
                );
            }
            outcome
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(Processed::Finished(record)) => {
                let executed = MetricsMsg::Executed {
                    language: record.language.clone(),
                    status: record.status,
                    duration: Duration::from_millis(record.duration_ms.unwrap_or(0)),
                };
                metric(&state.ctx, executed);
                acknowledge(&delivery).await;
            }
            Ok(Processed::Skipped) => acknowledge(&delivery).await,
            Ok(Processed::HandedBack) => {
                tracing::info!(execution_id = %job.id(), "job handed back: this node is leaving");
                delivery.nak().await;
            }
            // The record could not be read or stored: hand the job back rather than lose it,
            // after a pause, so that a NATS outage of a few seconds does not use up its
            // deliveries at once.
            Err(e) => {
                let pause = RETRY_PAUSE * u32::try_from(delivery.attempt()).unwrap_or(1);
                tracing::error!(execution_id = %job.id(), error = %e, "job handed back; delivered again in {pause:?}");
                delivery.nak_after(pause).await;
            }
        }
        state
            .supervisor
            .cast(SupervisorMsg::WorkerIdle(myself.get_id()))?;
        Ok(())
    }
}

fn metric(ctx: &WorkerContext, msg: MetricsMsg) {
    if let Some(metrics) = lookup::<MetricsMsg>(&names::metrics(ctx.node.node_id())) {
        let _ = metrics.cast(msg);
    }
}

/// An ack that fails (NATS briefly away) only means a redelivery, which finds the record final
/// and acks then; it is no reason to fail the worker.
async fn acknowledge(delivery: &Delivery) {
    if let Err(e) = delivery.ack().await {
        tracing::warn!(error = %e, "ack failed; the job will be redelivered and found finished");
    }
}

async fn keep_alive(delivery: &Delivery, ack_wait: Duration) -> std::convert::Infallible {
    let mut tick = tokio::time::interval((ack_wait / 3).max(Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tick.tick().await;
        delivery.in_progress().await;
    }
}

/// How a job left a worker.
enum Processed {
    /// Its final record is stored.
    Finished(Box<ExecutionRecord>),
    /// Nothing to run: already final, or cancelled before it started.
    Skipped,
    /// Stopped unfinished because the node is leaving; the queue gives it to another node.
    HandedBack,
}

/// Takes the job from queued to a final, stored record.
async fn process(
    ctx: &WorkerContext,
    job: &Job,
    delivery: &Delivery,
) -> Result<Processed, QueueError> {
    let records = &ctx.node.queue.records;
    let id = job.id();
    let max_deliver = ctx.node.config.nats.max_deliver;
    let mut found = records.get(&id).await?;
    // Running elsewhere: this delivery is a copy, or came back while its holder still works.
    while let Some(record) = found.as_ref().map(|f| &f.record) {
        if record.status != Status::Running {
            break;
        }
        match held_elsewhere(ctx, record, delivery).await? {
            Holding::Nobody => break,
            Holding::ThroughAnotherMessage => {
                tracing::info!(node = ?record.node, "job left to the node running it");
                return Ok(Processed::Skipped);
            }
            // Kept (in-progress acks run beside this) until it ends or its holder is gone.
            Holding::ThisMessage => {
                tokio::time::sleep(RECHECK_HOLDER).await;
                found = records.get(&id).await?;
            }
        }
    }
    if found.as_ref().is_some_and(|f| f.record.status.is_final()) {
        return Ok(Processed::Skipped);
    }
    if delivery.attempt() > max_deliver {
        let record = ExecutionRecord::internal_error(
            job,
            format!("gave up after {max_deliver} deliveries: each node that took the job stopped before finishing it"),
        );
        records.put_final(&record, STORE_PATIENCE).await?;
        return Ok(Processed::Finished(Box::new(record)));
    }
    // Registered before the job is marked running, so that a cancel seen as running finds it.
    let (kill, killed) = oneshot::channel();
    ctx.running.insert(id, kill);
    let result = async {
        let Some(running) = claim(ctx, job, found).await? else {
            return Ok(Processed::Skipped);
        };
        if let Some(started) = running.started_at {
            let wait = (started - running.created_at).to_std().unwrap_or_default();
            metric(ctx, MetricsMsg::QueueWait(wait));
        }
        if delivery.attempt() > 1 {
            // An earlier attempt's node died; its container may still run here.
            if let Err(e) = ctx.sandbox.remove_execution(&id.to_string()).await {
                tracing::warn!(execution_id = %id, error = %e, "could not remove an earlier attempt's container");
            }
        }
        let Some(record) = execute(ctx, job, running.clone(), killed).await else {
            // Queued again, so that the next node takes it at once rather than wait to see
            // whether this one still holds it.
            let queued = ExecutionRecord {
                status: Status::Queued,
                node: None,
                started_at: None,
                ..running
            };
            records.put(&queued).await?;
            return Ok(Processed::HandedBack);
        };
        records.put_final(&record, STORE_PATIENCE).await?;
        Ok(Processed::Finished(Box::new(record)))
    }
    .await;
    ctx.running.remove(&id);
    result
}

/// Who has a job whose record says it runs.
enum Holding {
    /// Its node died, or lost it (the worker was replaced): this worker takes it over.
    Nobody,
    /// A live node, through another message: this one is a copy.
    ThroughAnotherMessage,
    /// A live node, through this very message (come back because its in-progress acks went
    /// missing), or a node whose last heartbeat predates its claim: look again soon.
    ThisMessage,
}

const RECHECK_HOLDER: Duration = Duration::from_secs(1);

async fn held_elsewhere(
    ctx: &WorkerContext,
    record: &ExecutionRecord,
    delivery: &Delivery,
) -> Result<Holding, QueueError> {
    let node = record.node.as_deref().unwrap_or_default();
    if node == ctx.node.node_id() {
        // Another worker here has it; if none has, its worker died and the job is ours.
        return Ok(match ctx.running.contains_key(&record.execution_id) {
            true => Holding::ThisMessage,
            false => Holding::Nobody,
        });
    }
    let entry = nodes::get(&ctx.node.queue.nodes, node).await?;
    let holder = nodes::holder(
        entry.as_ref(),
        &record.execution_id,
        record.started_at,
        Utc::now(),
    );
    Ok(match holder {
        Holder::Gone => Holding::Nobody,
        Holder::Alive { stream_seq } if stream_seq != delivery.stream_seq() => {
            Holding::ThroughAnotherMessage
        }
        Holder::Alive { .. } | Holder::Unknown => Holding::ThisMessage,
    })
}

/// Marks the record running (compare-and-set) and returns it. None when it is final, was
/// cancelled, or another worker claimed it first.
/// `found` is the record as already read; it is read again only after a lost race.
async fn claim(
    ctx: &WorkerContext,
    job: &Job,
    mut found: Option<Versioned>,
) -> Result<Option<ExecutionRecord>, QueueError> {
    let records = &ctx.node.queue.records;
    loop {
        let (record, revision) = match found.take() {
            Some(Versioned { record, revision }) => (record, Some(revision)),
            // Expired or never written (a publish from outside the API): start it afresh.
            None => (ExecutionRecord::new(job, Status::Queued), None),
        };
        if record.status.is_final() {
            return Ok(None);
        }
        let running = ExecutionRecord {
            status: Status::Running,
            node: Some(ctx.node.node_id().to_string()),
            started_at: Some(Utc::now()),
            ..record
        };
        let stored = match revision {
            Some(revision) => records.update(&running, revision).await?,
            None => records.create(&running).await?,
        };
        if stored {
            return Ok(Some(running));
        }
        found = records.get(&job.id()).await?;
        if found
            .as_ref()
            .is_some_and(|f| f.record.status == Status::Running)
        {
            return Ok(None);
        }
    }
}

/// Runs the job in a cell. None: it was stopped to be handed back.
async fn execute(
    ctx: &WorkerContext,
    job: &Job,
    running: ExecutionRecord,
    stop: oneshot::Receiver<Stop>,
) -> Option<ExecutionRecord> {
    let runtime_name = names::runtime(ctx.node.node_id(), &job.language.name);
    let Some(runtime) = lookup::<RuntimeMsg>(&runtime_name) else {
        return Some(running.failed("this node has no runtime for the language"));
    };
    let acquired = runtime
        .call(
            |port| RuntimeMsg::Acquire(Box::new(job.clone()), port),
            Some(ACQUIRE_TIMEOUT),
        )
        .await;
    let mut cell = match acquired {
        Ok(ractor::rpc::CallResult::Success(Ok(cell))) => cell,
        Ok(ractor::rpc::CallResult::Success(Err(e))) => {
            return Some(ExecutionRecord::internal_error(job, e.to_string()))
        }
        Ok(_) | Err(_) => {
            return Some(ExecutionRecord::internal_error(
                job,
                "no cell could be had in time",
            ))
        }
    };
    let why = std::sync::OnceLock::new();
    let stopped = async {
        match stop.await {
            Ok(reason) => drop(why.set(reason)),
            // A dropped sender (job finished) must not count as a stop.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    ctx.containers.insert(job.id(), cell.id.clone());
    let executed = ctx.sandbox.execute(&mut cell, job, stopped).await;
    ctx.containers.remove(&job.id());
    // The cell goes back to its runtime, which keeps it for the next job or removes it.
    if let Err(ractor::MessagingErr::SendErr(RuntimeMsg::Release(cell))) =
        runtime.cast(RuntimeMsg::Release(Box::new(cell)))
    {
        ctx.sandbox.remove_later(cell.id);
    }
    if why.get() == Some(&Stop::HandBack) {
        return None;
    }
    Some(match executed {
        Ok(outcome) => outcome.into_record(running),
        Err(e) => {
            tracing::error!(execution_id = %job.id(), error = %e, "execution failed");
            running.failed(e.to_string())
        }
    })
}
