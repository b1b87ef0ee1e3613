//! Execution records in the KV bucket `codebeaker-executions`, MessagePack with named fields.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use futures::StreamExt;
use uuid::Uuid;

use super::QueueError;
use crate::model::ExecutionRecord;

#[derive(Clone)]
pub struct Records {
    kv: kv::Store,
}

/// A record and the KV revision it was read at (for compare-and-set updates).
pub struct Versioned {
    pub record: ExecutionRecord,
    pub revision: u64,
}

impl Records {
    pub fn new(kv: kv::Store) -> Records {
        Records { kv }
    }

    /// Stores a new record; false when one already exists under its id.
    pub async fn create(&self, record: &ExecutionRecord) -> Result<bool, QueueError> {
        match self
            .kv
            .create(key(&record.execution_id), encode(record)?)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(QueueError::kv("create record", e)),
        }
    }

    pub async fn get(&self, id: &Uuid) -> Result<Option<Versioned>, QueueError> {
        let entry = self
            .kv
            .entry(key(id))
            .await
            .map_err(|e| QueueError::kv("read record", e))?;
        match entry {
            Some(entry) if entry.operation == kv::Operation::Put => Ok(Some(Versioned {
                record: decode(&entry.value)?,
                revision: entry.revision,
            })),
            _ => Ok(None),
        }
    }

    /// Compare-and-set: writes only if the record is still at `revision`. False when another
    /// writer got there first.
    pub async fn update(
        &self,
        record: &ExecutionRecord,
        revision: u64,
    ) -> Result<bool, QueueError> {
        match self
            .kv
            .update(key(&record.execution_id), encode(record)?, revision)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(QueueError::kv("update record", e)),
        }
    }

    /// Writes a final record unless the stored one is final already (compare-and-set, so
    /// that a result stored meanwhile is never overwritten).
    pub async fn finish_unless_final(&self, record: &ExecutionRecord) -> Result<(), QueueError> {
        loop {
            let stored = match self.get(&record.execution_id).await? {
                Some(found) if found.record.status.is_final() => return Ok(()),
                Some(found) => self.update(record, found.revision).await?,
                None => self.create(record).await?,
            };
            if stored {
                return Ok(());
            }
        }
    }

    pub async fn put(&self, record: &ExecutionRecord) -> Result<(), QueueError> {
        self.kv
            .put(key(&record.execution_id), encode(record)?)
            .await
            .map(drop)
            .map_err(|e| QueueError::kv("store record", e))
    }

    /// Stores a final record, trying again for up to `patience`: the result is in hand, and a
    /// NATS cluster electing a new leader refuses writes for a few seconds.
    pub async fn put_final(
        &self,
        record: &ExecutionRecord,
        patience: Duration,
    ) -> Result<(), QueueError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.put(record).await {
                Err(e) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, "storing the result failed; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                stored => return stored,
            }
        }
    }

    /// Waits until the record reaches a final status, or `limit` passes (then returns the
    /// latest record seen, if any).
    pub async fn wait_final(
        &self,
        id: &Uuid,
        limit: Duration,
    ) -> Result<Option<ExecutionRecord>, QueueError> {
        let mut watch = self
            .kv
            .watch_with_history(key(id))
            .await
            .map_err(|e| QueueError::kv("watch record", e))?;
        let mut latest = None;
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return Ok(latest),
                entry = watch.next() => match entry {
                    Some(Ok(entry)) if entry.operation == kv::Operation::Put => {
                        let record: ExecutionRecord = decode(&entry.value)?;
                        if record.status.is_final() {
                            return Ok(Some(record));
                        }
                        latest = Some(record);
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(QueueError::kv("watch record", e)),
                    None => return Ok(latest),
                },
            }
        }
    }
}

fn key(id: &Uuid) -> String {
    id.to_string()
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<bytes::Bytes, QueueError> {
    rmp_serde::to_vec_named(value)
        .map(Into::into)
        .map_err(|e| QueueError::Encoding(e.to_string()))
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueueError> {
    rmp_serde::from_slice(bytes).map_err(|e| QueueError::Encoding(e.to_string()))
}
