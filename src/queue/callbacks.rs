//! Webhook deliveries: their state in the KV bucket `codebeaker-callbacks`, and the durable
//! consumer `webhooks` over the records' own stream, which hands every record write to the
//! nodes that deliver. A final record with a `callback_url` is a delivery to make; since the
//! record's message stays in the stream until acked, a delivery outlives any node.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::kv::{self, CreateErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{encode, read};
use super::{names, QueueError};
use crate::model::{Callback, CallbackState};

/// A delivery's stored state: what records show, and for a batch, which execution's final
/// record made the batch final (only that record's message delivers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub callback: Callback,
    pub owner: Option<Uuid>,
}

/// Whose delivery a key holds.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Execution(Uuid),
    Batch(Uuid),
}

impl Target {
    fn key(self) -> String {
        match self {
            Target::Execution(id) => id.to_string(),
            Target::Batch(id) => format!("batch-{id}"),
        }
    }
}

#[derive(Clone)]
pub struct Callbacks {
    kv: kv::Store,
}

impl Callbacks {
    pub fn new(kv: kv::Store) -> Callbacks {
        Callbacks { kv }
    }

    pub async fn get(&self, target: Target) -> Result<Option<Stored>, QueueError> {
        read(&self.kv, target.key(), "read callback state").await
    }

    pub async fn put(&self, target: Target, stored: &Stored) -> Result<(), QueueError> {
        self.kv
            .put(target.key(), encode(stored)?)
            .await
            .map(drop)
            .map_err(|e| QueueError::kv("store callback state", e))
    }

    /// Takes a batch's delivery for `owner`; false when another execution's record took it.
    pub async fn claim(&self, batch: Uuid, owner: Uuid) -> Result<bool, QueueError> {
        let stored = Stored {
            callback: Callback::new(CallbackState::Pending, 0, None),
            owner: Some(owner),
        };
        match self
            .kv
            .create(Target::Batch(batch).key(), encode(&stored)?)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                let found = self.get(Target::Batch(batch)).await?;
                Ok(found.is_some_and(|f| f.owner == Some(owner)))
            }
            Err(e) => Err(QueueError::kv("claim batch callback", e)),
        }
    }
}

/// The consumer every delivering node pulls from, created if missing. It starts at the
/// records written from its creation on: callbacks are refused while no node delivers.
pub async fn consumer(
    js: &async_nats::jetstream::Context,
    ack_wait: Duration,
) -> Result<PullConsumer, QueueError> {
    let stream = js
        .get_stream(format!("KV_{}", names::EXECUTIONS))
        .await
        .map_err(|e| QueueError::setup("records stream", e))?;
    let config = pull::Config {
        durable_name: Some(names::WEBHOOKS_CONSUMER.into()),
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait,
        // Our own count decides when to give up (webhooks.max_attempts).
        max_deliver: -1,
        ..Default::default()
    };
    stream
        .get_or_create_consumer(names::WEBHOOKS_CONSUMER, config)
        .await
        .map_err(|e| QueueError::setup("webhooks consumer", e))
}
