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
use super::supervisor::SupervisorMsg;
use super::{lookup, names, Stop, WorkerContext};
use crate::model::{ExecutionRecord, Job, Status};
use crate::queue::jetstream::Delivery;
use crate::queue::nodes;
use crate::queue::ownership::{self, Claim, Delivered, Expect, Sight};
use crate::queue::records::Fenced;
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
            Ok(Processed::Superseded) => {}
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
    /// Nothing to run: already final, cancelled before it started, or a copy of a job a live
    /// node holds.
    Skipped,
    /// Stopped unfinished because the node is leaving; the queue gives it to another node.
    HandedBack,
    /// Another node took the job over while it ran here, and its record stands. The message
    /// is left alone: whoever holds it now acks it, or it comes back and is found final.
    Superseded,
}

const RECHECK_HOLDER: Duration = Duration::from_secs(1);

/// Takes the job from queued to a final, stored record. The decisions are `ownership`'s; this
/// reads what they need and carries them out.
async fn process(
    ctx: &WorkerContext,
    job: &Job,
    delivery: &Delivery,
) -> Result<Processed, QueueError> {
    let records = &ctx.node.queue.records;
    let id = job.id();
    let mut found = records.get(&id).await?;
    let (ticket, claim, killed) = loop {
        match decide(ctx, id, found.as_ref(), delivery).await? {
            Delivered::Skip => {
                if let Some(holder) =
                    found.and_then(|f| f.record.node.filter(|_| f.record.status == Status::Running))
                {
                    tracing::info!(node = %holder, "job left to the node running it");
                }
                return Ok(Processed::Skipped);
            }
            // Kept (in-progress acks run beside this) until it ends or its holder is gone.
            Delivered::Recheck => tokio::time::sleep(RECHECK_HOLDER).await,
            Delivered::GiveUp => return give_up(ctx, job, found).await,
            Delivered::Claim => {
                // Registered before the claim, so that a cancel that sees the job running
                // finds it here. None: a worker here registered it since `decide` looked.
                let (kill, killed) = oneshot::channel();
                if let Some(ticket) = ctx.running.register(id, kill) {
                    match try_claim(ctx, job, found.as_ref()).await {
                        Ok(Some(claim)) => break (ticket, claim, killed),
                        // Lost the race: look again at what won.
                        Ok(None) => ctx.running.release(ticket),
                        Err(e) => {
                            ctx.running.release(ticket);
                            return Err(e);
                        }
                    }
                }
            }
        }
        found = records.get(&id).await?;
    };
    let result = run_claimed(ctx, job, delivery, &claim, killed).await;
    ctx.running.release(ticket);
    result
}

/// Reads what `ownership::on_delivery` needs (the holder's heartbeat, when the record runs
/// on another node) and asks it.
async fn decide(
    ctx: &WorkerContext,
    id: uuid::Uuid,
    found: Option<&Versioned>,
    delivery: &Delivery,
) -> Result<Delivered, QueueError> {
    let record = found.map(|f| &f.record);
    let node = ctx.node.node_id();
    let elsewhere = match record {
        Some(r) if r.status == Status::Running && r.node.as_deref() != Some(node) => {
            let holder_id = r.node.as_deref().unwrap_or_default();
            let entry = nodes::get(&ctx.node.queue.nodes, holder_id).await?;
            Some(ownership::holder(
                entry.as_ref(),
                &r.execution_id,
                r.started_at,
                Utc::now(),
            ))
        }
        _ => None,
    };
    let sight = Sight {
        record,
        node,
        held_here: ctx.running.holds(&id),
        elsewhere,
        stream_seq: delivery.stream_seq(),
        attempt: delivery.attempt(),
        max_deliver: ctx.node.config.nats.max_deliver,
    };
    Ok(ownership::on_delivery(&sight))
}

/// Writes the claim; None when another writer got there first.
async fn try_claim(
    ctx: &WorkerContext,
    job: &Job,
    found: Option<&Versioned>,
) -> Result<Option<Claim>, QueueError> {
    let record = ownership::claim(
        found.map(|f| &f.record),
        || ExecutionRecord::new(job, Status::Queued),
        ctx.node.node_id(),
        Utc::now(),
    );
    let expect = Expect::read_at(found.map(|f| f.revision));
    let written = ctx.node.queue.records.write(&record, expect).await?;
    Ok(written.map(|revision| Claim { record, revision }))
}

/// Records that the job was given up on, unless someone wrote since `found` was read.
async fn give_up(
    ctx: &WorkerContext,
    job: &Job,
    found: Option<Versioned>,
) -> Result<Processed, QueueError> {
    let max_deliver = ctx.node.config.nats.max_deliver;
    let record = ExecutionRecord::internal_error(
        job,
        format!("gave up after {max_deliver} deliveries: each node that took the job stopped before finishing it"),
    );
    let expect = Expect::read_at(found.map(|f| f.revision));
    store(ctx, record, expect).await
}

/// Writes a job's end, fenced by `expect`.
async fn store(
    ctx: &WorkerContext,
    record: ExecutionRecord,
    expect: Expect,
) -> Result<Processed, QueueError> {
    let records = &ctx.node.queue.records;
    Ok(
        match records
            .write_fenced(&record, expect, STORE_PATIENCE)
            .await?
        {
            Fenced::Stored if record.status.is_final() => Processed::Finished(Box::new(record)),
            Fenced::Stored => Processed::HandedBack,
            Fenced::Superseded => {
                tracing::warn!(execution_id = %record.execution_id, "another node took the job over; its record stands");
                Processed::Superseded
            }
        },
    )
}

/// Runs a claimed job and writes its end (result or hand-back) on the claim's revision.
async fn run_claimed(
    ctx: &WorkerContext,
    job: &Job,
    delivery: &Delivery,
    claim: &Claim,
    killed: oneshot::Receiver<Stop>,
) -> Result<Processed, QueueError> {
    let id = job.id();
    if let Some(started) = claim.record.started_at {
        let wait = (started - claim.record.created_at)
            .to_std()
            .unwrap_or_default();
        metric(ctx, MetricsMsg::QueueWait(wait));
    }
    if delivery.attempt() > 1 {
        // An earlier attempt's node died; its container may still run here.
        if let Err(e) = ctx.sandbox.remove_execution(&id.to_string()).await {
            tracing::warn!(execution_id = %id, error = %e, "could not remove an earlier attempt's container");
        }
    }
    let end = match super::execution::execute(ctx, job, claim.record.clone(), killed).await {
        Some(record) => record,
        None => claim.hand_back(),
    };
    store(ctx, end, claim.expect()).await
}
