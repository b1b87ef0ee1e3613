//! The worker node's pull loop: takes jobs from JetStream only as fast as workers are free,
//! highest priority first, and hands them to the Supervisor. It recreates its consumers and
//! backs off when NATS goes away, and says so in the log rather than stalling silently.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::jetstream::{self, Delivery};
use super::{names, records, Queue};
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::worker::Assignment;
use crate::actors::NodeContext;
use crate::actors::WorkerContext;
use crate::model::{ExecutionRecord, Submission, ValidationError};
use crate::sandbox::limits::Policy;

/// Longest an idle worker waits for a job it was not woken for (redeliveries, or a publish whose
/// wake-up message was missed).
const POLL: Duration = Duration::from_millis(250);

pub async fn run(
    ctx: Arc<NodeContext>,
    supervisor: ActorRef<SupervisorMsg>,
    freed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let queue = &ctx.queue;
    let mut backoff = Duration::from_millis(100);
    let mut wake = match queue.client.subscribe(names::WAKE).await {
        Ok(sub) => Some(sub),
        Err(e) => {
            tracing::warn!(error = %e, "no wake-up subscription; polling only");
            None
        }
    };
    while !*stop.borrow() {
        let consumers = match jetstream::consumers(&queue.js, &queue.config).await {
            Ok(consumers) => consumers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot set up the job consumers; retrying in {backoff:?}");
                pause(&mut stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tracing::info!("pulling jobs from {}", names::STREAM);
        loop {
            if *stop.borrow() {
                return;
            }
            let free = capacity(&supervisor).await;
            if free == 0 {
                tokio::select! {
                    _ = freed.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            match pull(&ctx, &consumers, free, &supervisor).await {
                Ok(0) => {
                    let woken = async {
                        match wake.as_mut() {
                            Some(sub) => drop(sub.next().await),
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = woken => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.changed() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "pulling jobs failed; recreating the consumers in {backoff:?}");
                    pause(&mut stop, backoff).await;
                    break;
                }
            }
        }
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, how_long: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(how_long) => {}
        _ = stop.changed() => {}
    }
}

async fn capacity(supervisor: &ActorRef<SupervisorMsg>) -> usize {
    match supervisor
        .call(SupervisorMsg::Capacity, Some(Duration::from_secs(5)))
        .await
    {
        Ok(CallResult::Success(n)) => n,
        _ => 0,
    }
}

/// Fetches up to `free` jobs without waiting, highest priority first.
async fn pull(
    ctx: &NodeContext,
    consumers: &[PullConsumer],
    free: usize,
    supervisor: &ActorRef<SupervisorMsg>,
) -> Result<usize, String> {
    let mut taken = 0;
    for consumer in consumers {
        if taken >= free {
            break;
        }
        // A no-wait fetch answers at once; one that does not (its consumer's leader was lost
        // with a server) would wait forever, so it counts as failed and the loop starts over.
        taken += tokio::time::timeout(
            FETCH_PATIENCE,
            fetch(ctx, consumer, free - taken, supervisor),
        )
        .await
        .map_err(|_| format!("no answer to a fetch within {FETCH_PATIENCE:?}"))??;
    }
    Ok(taken)
}

const FETCH_PATIENCE: Duration = Duration::from_secs(5);

async fn fetch(
    ctx: &NodeContext,
    consumer: &PullConsumer,
    most: usize,
    supervisor: &ActorRef<SupervisorMsg>,
) -> Result<usize, String> {
    let mut taken = 0;
    let mut batch = consumer
        .fetch()
        .max_messages(most)
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    while let Some(message) = batch.next().await {
        let delivery = Delivery::new(message.map_err(|e| e.to_string())?);
        let submission = match records::decode::<Submission>(delivery.payload()) {
            Ok(submission) => submission,
            Err(e) => {
                tracing::error!(error = %e, "dropping a job message that cannot be decoded");
                delivery.term().await;
                continue;
            }
        };
        // Nothing in the message is trusted: the job is rebuilt from this node's own tables.
        let limits = &ctx.config.limits;
        match submission
            .clone()
            .resolve(&ctx.languages, limits, Policy::Clamp)
        {
            Ok(job) => {
                let assignment = Assignment {
                    job: Box::new(job),
                    delivery,
                };
                supervisor
                    .cast(SupervisorMsg::Submit(Box::new(assignment)))
                    .map_err(|e| e.to_string())?;
                taken += 1;
            }
            Err(e) => refuse(&ctx.queue, &submission, &e, &delivery).await,
        }
    }
    Ok(taken)
}

/// Ends a job this node will not run with `internal_error`, unless its record is final
/// already, and acks it. A record that cannot be written leaves the message for redelivery.
async fn refuse(
    queue: &Queue,
    submission: &Submission,
    why: &ValidationError,
    delivery: &Delivery,
) {
    let id = submission.execution_id;
    tracing::error!(execution_id = %id, error = %why, "refusing a job message");
    let record = ExecutionRecord::refused(submission, why);
    match queue.records.finish_unless_final(&record).await {
        Ok(()) => {
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "ack of a refused job failed");
            }
        }
        Err(e) => tracing::warn!(execution_id = %id, error = %e, "could not record a refused job"),
    }
}

/// Kills jobs running on this node when a client cancels them (`codebeaker.cancel.<id>`).
pub async fn listen_for_cancels(ctx: Arc<WorkerContext>, mut stop: watch::Receiver<bool>) {
    let mut cancels = match ctx.node.queue.client.subscribe(names::CANCEL_ALL).await {
        Ok(sub) => sub,
        Err(e) => return tracing::error!(error = %e, "cannot listen for cancel requests"),
    };
    loop {
        tokio::select! {
            Some(msg) = cancels.next() => {
                let id = msg.subject.rsplit('.').next().and_then(|s| Uuid::parse_str(s).ok());
                if let Some(id) = id.filter(|id| ctx.cancel(id)) {
                    tracing::info!(execution_id = %id, "cancelled by request; killing its container");
                }
            }
            _ = stop.changed() => return,
            else => return,
        }
    }
}
