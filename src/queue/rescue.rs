//! Rescue of jobs whose message the stream will never deliver again.
//!
//! JetStream redelivers a message nobody acked once its ack_wait passes, and that is how the
//! jobs of a node that died normally come back. But nats-server 2.9 can lose track of a message
//! its consumer leader delivered just before that leader died (nats-server#6469): the message
//! stays in the stream, unacked, and is never delivered again. A machine that dies with a worker
//! node and a NATS server on it is exactly that case. So each worker node looks, every
//! heartbeat, at the messages the consumers have delivered but not seen acked (few: the jobs in
//! flight) and asks each job's record whether anyone still has it:
//!
//! - final for an ack_wait: a leftover (its ack was lost); deleted;
//! - `running` on a node that no longer holds it (see [`super::ownership::holder`]), or `queued`, while no
//!   live node's heartbeat lists the message: suspect; lost once it has stayed so for
//!   [`nodes::GONE_AFTER`], by which time a live node holding it would have listed it.
//!
//! A lost job is published again from its message, which is then deleted. Should the stream
//! deliver the original after all, the copy does no harm: a worker leaves a job that a live
//! node holds to that node, and claims are compare-and-set.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::nodes::{self, NodeEntry};
use super::ownership::{verdict, Verdict};
use super::{names, records, Queue, QueueError};
use crate::model::{Priority, Submission};

/// Looks for lost jobs every heartbeat until stopped.
pub async fn run(queue: Queue, own_id: String, mut stop: watch::Receiver<bool>) {
    let mut rescuer = Rescuer {
        ack_wait: Duration::from_secs(queue.config.ack_wait_secs),
        queue,
        own_id,
        suspects: HashMap::new(),
    };
    let mut tick = tokio::time::interval(nodes::HEARTBEAT);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = rescuer.sweep().await {
            tracing::warn!(error = %e, "could not look for lost jobs");
        }
    }
}

struct Rescuer {
    queue: Queue,
    own_id: String,
    ack_wait: Duration,
    /// Delivered messages whose job was still queued, by stream sequence: when first seen so.
    suspects: HashMap<u64, Instant>,
}

impl Rescuer {
    async fn sweep(&mut self) -> Result<(), QueueError> {
        let now = Utc::now();
        let nodes: HashMap<String, NodeEntry> = nodes::all(&self.queue.nodes)
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        let stream = self
            .queue
            .js
            .get_stream_no_info(names::STREAM)
            .await
            .map_err(|e| QueueError::kv("job stream lookup", e))?;
        let mut seen = HashSet::new();
        for priority in Priority::ALL {
            for message in unacked(&stream, priority).await? {
                seen.insert(message.sequence);
                self.look_at(&stream, message, &nodes, now).await?;
            }
        }
        self.suspects.retain(|seq, _| seen.contains(seq));
        // Whatever a gone node held has been looked at above; its entry is of no more use.
        for gone in nodes
            .values()
            .filter(|e| e.is_gone(now) && e.id != self.own_id)
        {
            nodes::remove(&self.queue.nodes, &gone.id).await?;
        }
        Ok(())
    }

    async fn look_at(
        &mut self,
        stream: &Stream<()>,
        message: StreamMessage,
        nodes: &HashMap<String, NodeEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), QueueError> {
        // One that does not decode is the consumer's to drop.
        let Ok(job) = records::decode::<Submission>(&message.payload) else {
            return Ok(());
        };
        let found = self.queue.records.get(&job.execution_id).await?;
        let record = found.map(|f| f.record);
        let verdict = verdict(record.as_ref(), message.sequence, nodes, now, self.ack_wait);
        tracing::debug!(execution_id = %job.execution_id, sequence = message.sequence, ?verdict, "looked at");
        match verdict {
            Verdict::Held => {
                self.suspects.remove(&message.sequence);
            }
            Verdict::Leftover => delete(stream, message.sequence).await,
            Verdict::Suspect => {
                let since = *self
                    .suspects
                    .entry(message.sequence)
                    .or_insert_with(Instant::now);
                if since.elapsed() >= nodes::GONE_AFTER {
                    let had_it = record.and_then(|r| r.node).unwrap_or_default();
                    self.publish_again(&message).await?;
                    delete(stream, message.sequence).await;
                    tracing::warn!(
                        execution_id = %job.execution_id,
                        node = %had_it,
                        "job published again: nobody held it and the stream would not deliver it"
                    );
                }
            }
        }
        Ok(())
    }

    async fn publish_again(&self, original: &StreamMessage) -> Result<(), QueueError> {
        let mut headers = HeaderMap::new();
        for name in [names::EXECUTION_ID_HEADER, names::REQUEST_ID_HEADER] {
            if let Some(value) = original.headers.get(name) {
                headers.insert(name, value.clone());
            }
        }
        // Counted as a delivery, so that a job that takes its nodes down is given up on.
        let rescues = names::rescues(Some(&original.headers)) + 1;
        headers.insert(names::RESCUES_HEADER, rescues.to_string().as_str());
        // One copy per original message, however many nodes rescue it at once.
        let copy_id = format!("rescue/{}", original.sequence);
        headers.insert("Nats-Msg-Id", copy_id.as_str());
        let js = &self.queue.js;
        js.publish_with_headers(original.subject.clone(), headers, original.payload.clone())
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?;
        let _ = self
            .queue
            .client
            .publish(names::WAKE, bytes::Bytes::new())
            .await;
        Ok(())
    }
}

/// The messages of one priority that its consumer delivered and has not seen acked: those
/// after its ack floor, up to the last it delivered (acked ones are gone from the stream).
async fn unacked(
    stream: &Stream<()>,
    priority: Priority,
) -> Result<Vec<StreamMessage>, QueueError> {
    let info = stream
        .consumer_info(names::consumer(priority))
        .await
        .map_err(|e| QueueError::kv("consumer info", e))?;
    let last = info.delivered.stream_sequence;
    let mut next = info.ack_floor.stream_sequence + 1;
    let mut found = Vec::new();
    while next <= last {
        let message = match stream
            .get_first_raw_message_by_subject(names::job_subject(priority), next)
            .await
        {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(QueueError::kv("job message read", e)),
        };
        if message.sequence > last {
            break;
        }
        next = message.sequence + 1;
        found.push(message);
    }
    tracing::debug!(
        priority = priority.as_str(),
        ack_floor = info.ack_floor.stream_sequence,
        delivered = last,
        ack_pending = info.num_ack_pending,
        unacked = ?found.iter().map(|m| m.sequence).collect::<Vec<_>>(),
        "delivered job messages not acked"
    );
    Ok(found)
}

/// Best effort: a message left behind is only delivered again and skipped.
async fn delete(stream: &Stream<()>, sequence: u64) {
    if let Err(e) = stream.delete_message(sequence).await {
        tracing::debug!(error = %e, sequence, "job message not deleted");
    }
}
