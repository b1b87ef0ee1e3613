//! The delivery loop. Each record write reaches one delivering node through the durable
//! consumer; a final record with a callback is POSTed, and its message acked once the
//! delivery is done (taken, or given up), or handed back with a pause to be tried again.
//! The attempt number is the message's delivery count, kept by JetStream, so it goes on
//! counting across node restarts.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::future::join_all;
use futures::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use super::policy::{self, Unresolved};
use super::{signature, Payload, Shape};
use crate::config::WebhooksConfig;
use crate::model::{BatchRecord, Callback, CallbackState, ExecutionRecord};
use crate::queue::callbacks::{self, Stored, Target};
use crate::queue::records::decode;
use crate::queue::{Queue, QueueError};

/// Deliveries in flight at once on one node.
const CONCURRENT: usize = 16;
/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_secs(300);

/// Runs until `stop` turns true, re-creating the consumer when NATS goes away.
pub async fn run(
    queue: Queue,
    config: WebhooksConfig,
    shape: Shape,
    mut stop: watch::Receiver<bool>,
) {
    let ack_wait = Duration::from_secs(config.timeout_secs + 20);
    let deliverer = Deliverer {
        queue,
        config,
        shape,
    };
    let mut backoff = Duration::from_millis(100);
    while !*stop.borrow() {
        let messages = match callbacks::consumer(&deliverer.queue.js, ack_wait).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot pull webhook deliveries; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        tracing::info!("delivering webhooks");
        let mut stopping = stop.clone();
        messages
            .take_until(async move { drop(stopping.changed().await) })
            .for_each_concurrent(CONCURRENT, |message| async {
                match message {
                    Ok(message) => deliverer.handle(message).await,
                    Err(e) => tracing::warn!(error = %e, "pulling webhook deliveries"),
                }
            })
            .await;
    }
}

struct Deliverer {
    queue: Queue,
    config: WebhooksConfig,
    shape: Shape,
}

/// What becomes of a record's message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    Done,
    TryAgainIn(Duration),
}

impl Next {
    /// Of two deliveries one message carries, the one still to make.
    fn and(self, other: Next) -> Next {
        match (self, other) {
            (Next::TryAgainIn(a), Next::TryAgainIn(b)) => Next::TryAgainIn(a.min(b)),
            (Next::TryAgainIn(a), _) | (_, Next::TryAgainIn(a)) => Next::TryAgainIn(a),
            _ => Next::Done,
        }
    }
}

/// Why one try failed: `Refused` will never get better (policy), `Failed` may.
enum Failure {
    Refused(String),
    Failed(String),
}

impl Deliverer {
    async fn handle(&self, message: jetstream::Message) {
        // Anything but a record (a purge marker) has nothing to deliver.
        let record = decode::<ExecutionRecord>(&message.payload).ok();
        let attempt = message.info().map_or(1, |i| i.delivered.max(1) as u32);
        let next = match record.filter(|r| r.status.is_final()) {
            Some(record) => self.deliveries(&record, attempt).await,
            None => Next::Done,
        };
        let ack = match next {
            Next::Done => AckKind::Ack,
            Next::TryAgainIn(pause) => AckKind::Nak(Some(pause)),
        };
        if let Err(e) = message.ack_with(ack).await {
            tracing::warn!(error = %e, "webhook ack failed; the record comes again and is found delivered");
        }
    }

    /// The record's own callback, and its batch's when it is the last of the batch to end.
    async fn deliveries(&self, record: &ExecutionRecord, attempt: u32) -> Next {
        let id = record.execution_id;
        let own = match &record.callback_url {
            Some(url) => {
                let payload = (self.shape)(record).unwrap_or_else(|| Payload::post(record));
                self.try_once(Target::Execution(id), url, payload, attempt)
                    .await
            }
            None => Ok(Next::Done),
        };
        let batch = match record.batch_id {
            Some(batch) => self.batch(batch, id, attempt).await,
            None => Ok(Next::Done),
        };
        let kv_trouble = |e: QueueError| {
            tracing::warn!(execution_id = %id, error = %e, "webhook state unreadable; trying again");
            Next::TryAgainIn(self.pause(1))
        };
        own.unwrap_or_else(kv_trouble)
            .and(batch.unwrap_or_else(kv_trouble))
    }

    /// The batch's delivery, made by the message of whichever of its records made it final.
    async fn batch(&self, batch_id: Uuid, owner: Uuid, attempt: u32) -> Result<Next, QueueError> {
        let Some(batch) = self.queue.batches.get(&batch_id).await? else {
            return Ok(Next::Done);
        };
        let Some(url) = batch.callback_url else {
            return Ok(Next::Done);
        };
        let records = &self.queue.records;
        let found = join_all(batch.execution_ids.iter().map(|id| records.get(id))).await;
        let mut executions = Vec::with_capacity(found.len());
        for record in found {
            match record? {
                Some(v) if v.record.status.is_final() => executions.push(v.record),
                // Not all final yet: the last record to end delivers it.
                _ => return Ok(Next::Done),
            }
        }
        if !self.queue.callbacks.claim(batch_id, owner).await? {
            return Ok(Next::Done);
        }
        let body = BatchRecord {
            batch_id,
            executions,
            callback: None,
        };
        self.try_once(Target::Batch(batch_id), &url, Payload::post(&body), attempt)
            .await
    }

    /// One try, unless the delivery is over already; its outcome stored for reads.
    async fn try_once(
        &self,
        target: Target,
        url: &str,
        payload: Payload,
        attempt: u32,
    ) -> Result<Next, QueueError> {
        let stored = self.queue.callbacks.get(target).await?;
        if stored.as_ref().is_some_and(|s| s.callback.state.is_final()) {
            return Ok(Next::Done);
        }
        let result = self.send(url, &payload, attempt).await;
        let give_up = attempt >= self.config.max_attempts;
        let (callback, next) = match result {
            Ok(()) => (
                Callback::new(CallbackState::Delivered, attempt, None),
                Next::Done,
            ),
            Err(Failure::Refused(why)) => (
                Callback::new(CallbackState::Failed, attempt, Some(why)),
                Next::Done,
            ),
            Err(Failure::Failed(why)) if give_up => (
                Callback::new(CallbackState::Failed, attempt, Some(why)),
                Next::Done,
            ),
            Err(Failure::Failed(why)) => (
                Callback::new(CallbackState::Pending, attempt, Some(why)),
                Next::TryAgainIn(self.pause(attempt)),
            ),
        };
        tracing::info!(target = ?target, state = ?callback.state, attempt, error = callback.error, "webhook");
        let owner = stored.and_then(|s| s.owner);
        self.queue
            .callbacks
            .put(target, &Stored { callback, owner })
            .await?;
        Ok(next)
    }

    /// Sends the payload, signed, to the URL's checked addresses only, following no redirect.
    async fn send(&self, raw: &str, payload: &Payload, attempt: u32) -> Result<(), Failure> {
        let body = &payload.body;
        // Checked again here: a job message may come from anyone who can publish.
        let url = policy::check_url(&self.config, raw).map_err(Failure::Refused)?;
        let addrs = policy::resolve(&self.config, &url)
            .await
            .map_err(|e| match e {
                Unresolved::Refused(why) => Failure::Refused(why),
                Unresolved::Lookup(why) => Failure::Failed(why),
            })?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(self.config.timeout_secs))
            .no_proxy()
            .resolve_to_addrs(&host, &addrs)
            .build()
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let secret = self.config.secret.as_deref().unwrap_or_default();
        let signed = signature::sign(secret, chrono::Utc::now().timestamp(), body);
        let answer = client
            .request(payload.method.clone(), url)
            .header("content-type", "application/json")
            .header(signature::HEADER, signed)
            .header("X-CodeBeaker-Attempt", attempt.to_string())
            .header(
                "user-agent",
                concat!("CodeBeaker/", env!("CARGO_PKG_VERSION")),
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Failed(format!("{} failed: {e}", payload.method)))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(Failure::Failed(format!("the receiver answered {status}"))),
        }
    }

    fn pause(&self, attempt: u32) -> Duration {
        pause(Duration::from_millis(self.config.first_retry_ms), attempt)
    }
}

/// Before try `attempt + 1`: the first pause, doubled each time, at most five minutes.
fn pause(first: Duration, attempt: u32) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_two_deliveries_waits_for_the_one_left() {
        let soon = Next::TryAgainIn(Duration::from_secs(1));
        let later = Next::TryAgainIn(Duration::from_secs(4));
        assert_eq!(Next::Done.and(Next::Done), Next::Done);
        assert_eq!(Next::Done.and(later), later);
        assert_eq!(later.and(Next::Done), later);
        assert_eq!(later.and(soon), soon);
    }

    #[test]
    fn pauses_double_up_to_five_minutes() {
        let first = Duration::from_millis(500);
        let pauses: Vec<u64> = (1..=5)
            .map(|a| pause(first, a).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [500, 1000, 2000, 4000, 8000]);
        assert_eq!(pause(first, 40), MAX_PAUSE);
    }
}
