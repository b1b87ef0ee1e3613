//! The job stream `CODEBEAKER_JOBS`, its per-priority durable pull consumers, the KV buckets, and
//! the delivery handle a worker acks through. Everything here works on nats-server 2.9.10.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv, AckKind};

use super::{names, QueueError};
use crate::config::NatsConfig;
use crate::model::Priority;

pub async fn ensure_stream(js: &jetstream::Context, cfg: &NatsConfig) -> Result<(), QueueError> {
    let config = stream::Config {
        name: names::STREAM.into(),
        subjects: Priority::ALL
            .iter()
            .map(|p| names::job_subject(*p))
            .collect(),
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: cfg.replicas,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(drop)
        .map_err(|e| QueueError::setup("job stream", e))
}

/// Creates the bucket's stream by hand and opens it: the client's own `create_key_value`
/// expects account fields that nats-server 2.9.10 does not send.
pub async fn ensure_kv(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, QueueError> {
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| QueueError::setup("KV bucket stream", e))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| QueueError::setup("KV bucket", e))
}

/// The durable consumers, highest priority first, created if missing.
pub async fn consumers(
    js: &jetstream::Context,
    cfg: &NatsConfig,
) -> Result<Vec<PullConsumer>, QueueError> {
    let stream = js
        .get_stream(names::STREAM)
        .await
        .map_err(|e| QueueError::setup("job stream", e))?;
    let mut out = Vec::new();
    for priority in Priority::ALL {
        let name = names::consumer(priority);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: names::job_subject(priority),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(cfg.ack_wait_secs),
            // One more than ours: the last delivery is where the node records the give-up.
            max_deliver: cfg.max_deliver + 1,
            max_ack_pending: cfg.max_ack_pending,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&name, config)
            .await
            .map_err(|e| QueueError::setup("consumer", e))?;
        out.push(consumer);
    }
    Ok(out)
}

/// One delivery of a job message; the worker that owns the job acks through it.
pub struct Delivery {
    message: jetstream::Message,
}

impl Delivery {
    pub fn new(message: jetstream::Message) -> Delivery {
        Delivery { message }
    }

    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    /// The id of the request that submitted the job (absent on messages from older nodes).
    pub fn request_id(&self) -> Option<&str> {
        let headers = self.message.headers.as_ref()?;
        headers.get(names::REQUEST_ID_HEADER).map(|v| v.as_str())
    }

    /// How many times this job has been delivered, this time included (a rescue's copy
    /// counts the deliveries before it).
    pub fn attempt(&self) -> i64 {
        let delivered = self.message.info().map(|i| i.delivered).unwrap_or(1);
        delivered + names::rescues(self.message.headers.as_ref())
    }

    /// Where the message sits in the job stream (it stays there until acked).
    pub fn stream_seq(&self) -> u64 {
        self.message.info().map(|i| i.stream_sequence).unwrap_or(0)
    }

    /// Acks and waits for the server to confirm, so that a job is never acked only in hope.
    pub async fn ack(&self) -> Result<(), QueueError> {
        self.message
            .double_ack()
            .await
            .map_err(|e| QueueError::Ack(e.to_string()))
    }

    /// Tells the server the job is still being worked on, resetting its ack_wait.
    pub async fn in_progress(&self) {
        if let Err(e) = self.message.ack_with(AckKind::Progress).await {
            tracing::warn!(error = %e, "in-progress ack failed");
        }
    }

    /// Drops a message that can never be run (it does not decode).
    pub async fn term(&self) {
        if let Err(e) = self.message.ack_with(AckKind::Term).await {
            tracing::warn!(error = %e, "term failed");
        }
    }

    /// Hands the job back for immediate redelivery to any node.
    pub async fn nak(&self) {
        self.hand_back(None).await
    }

    /// Hands the job back, to be delivered again after `pause`.
    pub async fn nak_after(&self, pause: Duration) {
        self.hand_back(Some(pause)).await
    }

    async fn hand_back(&self, pause: Option<Duration>) {
        if let Err(e) = self.message.ack_with(AckKind::Nak(pause)).await {
            tracing::warn!(error = %e, "nak failed");
        }
    }
}
