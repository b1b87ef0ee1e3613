//! Batches in the KV bucket `codebeaker-batches`: which executions a batch holds. The jobs
//! themselves are ordinary jobs; a batch is only this list, kept as long as their records.

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{encode, read};
use super::QueueError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: Uuid,
    pub execution_ids: Vec<Uuid>,
    /// Where the batch is POSTed once every execution in it is final.
    #[serde(default)]
    pub callback_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Batches {
    kv: kv::Store,
}

impl Batches {
    pub fn new(kv: kv::Store) -> Batches {
        Batches { kv }
    }

    pub async fn create(&self, batch: &Batch) -> Result<(), QueueError> {
        self.kv
            .create(batch.batch_id.to_string(), encode(batch)?)
            .await
            .map(drop)
            .map_err(|e| QueueError::kv("create batch", e))
    }

    pub async fn get(&self, id: &Uuid) -> Result<Option<Batch>, QueueError> {
        read(&self.kv, id.to_string(), "read batch").await
    }
}
