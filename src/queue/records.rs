//! Execution records in the KV bucket `codebeaker-executions`, MessagePack with named fields.

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, UpdateErrorKind};
use uuid::Uuid;

use super::ownership::{self, Expect};
use super::QueueError;
use crate::model::ExecutionRecord;

#[derive(Clone)]
pub struct Records {
    kv: kv::Store,
}

/// How a fenced write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    Stored,
    /// Another writer (a node that took the job over) wrote since our claim; ours is dropped.
    Superseded,
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

    /// Stores a new record; None when one already exists under its id, else its revision.
    pub async fn create(&self, record: &ExecutionRecord) -> Result<Option<u64>, QueueError> {
        match self
            .kv
            .create(key(&record.execution_id), encode(record)?)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(None),
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

    /// The newest records, newest first, among the last `window` writes to the bucket. The
    /// bucket keeps one write per key (`max_messages_per_subject` 1), so each write still
    /// there is its execution's record as it stands; the others are gone and skipped. Read by
    /// sequence from the bucket's stream, so the cost follows `window`, not the bucket's size.
    pub async fn recent(&self, window: u64) -> Result<Vec<ExecutionRecord>, QueueError> {
        use futures::StreamExt;
        let mut stream = self.kv.stream.clone();
        let last = stream
            .info()
            .await
            .map_err(|e| QueueError::kv("records' stream info", e))?
            .state
            .last_sequence;
        let first = last.saturating_sub(window.saturating_sub(1)).max(1);
        let writes = futures::stream::iter((first..=last).rev())
            .map(|seq| self.kv.stream.get_raw_message(seq))
            .buffered(32)
            .collect::<Vec<_>>()
            .await;
        // A delete's empty payload does not decode, and is skipped like a write that is gone.
        let mut records: Vec<ExecutionRecord> = writes
            .into_iter()
            .flatten()
            .filter_map(|message| decode(&message.payload).ok())
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(records)
    }

    /// Compare-and-set: writes only if the record is still at `revision`. None when another
    /// writer got there first, else the new revision.
    pub async fn update(
        &self,
        record: &ExecutionRecord,
        revision: u64,
    ) -> Result<Option<u64>, QueueError> {
        match self
            .kv
            .update(key(&record.execution_id), encode(record)?, revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(QueueError::kv("update record", e)),
        }
    }

    /// Writes if KV holds what `expect` says (see `ownership`); None when it does not.
    pub async fn write(
        &self,
        record: &ExecutionRecord,
        expect: Expect,
    ) -> Result<Option<u64>, QueueError> {
        match expect {
            Expect::Absent => self.create(record).await,
            Expect::Revision(revision) => self.update(record, revision).await,
        }
    }

    /// A fenced write of a record in hand (a result, a hand-back), trying again for up to
    /// `patience`: a NATS cluster electing a new leader refuses writes for a few seconds.
    /// A write refused for its revision was either our own (it landed, its answer was lost)
    /// or came after a successor's claim, which wins.
    pub async fn write_fenced(
        &self,
        record: &ExecutionRecord,
        expect: Expect,
        patience: Duration,
    ) -> Result<Fenced, QueueError> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.write(record, expect).await {
                Ok(Some(_)) => return Ok(Fenced::Stored),
                Ok(None) => {
                    let stored = self.get(&record.execution_id).await?;
                    return Ok(
                        match ownership::is_own_write(stored.as_ref().map(|s| &s.record), record) {
                            true => Fenced::Stored,
                            false => Fenced::Superseded,
                        },
                    );
                }
                Err(e) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(error = %e, "storing the record failed; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes a final record unless the stored one is final already (compare-and-set, so
    /// that a result stored meanwhile is never overwritten).
    pub async fn finish_unless_final(&self, record: &ExecutionRecord) -> Result<(), QueueError> {
        loop {
            let found = self.get(&record.execution_id).await?;
            if found.as_ref().is_some_and(|f| f.record.status.is_final()) {
                return Ok(());
            }
            let expect = Expect::read_at(found.map(|f| f.revision));
            if self.write(record, expect).await?.is_some() {
                return Ok(());
            }
        }
    }

    /// A watch over every record's changes from now on.
    pub async fn watch_all(&self) -> Result<kv::Watch, QueueError> {
        self.kv
            .watch_all()
            .await
            .map_err(|e| QueueError::kv("watch records", e))
    }
}

fn key(id: &Uuid) -> String {
    id.to_string()
}

/// The value under `key`, decoded; None when there is none. (`Records::get` reads entries
/// instead, for their revisions.)
pub async fn read<T: serde::de::DeserializeOwned>(
    kv: &kv::Store,
    key: String,
    what: &'static str,
) -> Result<Option<T>, QueueError> {
    let entry = kv.get(key).await.map_err(|e| QueueError::kv(what, e))?;
    entry.map(|bytes| decode(&bytes)).transpose()
}

pub fn encode<T: serde::Serialize>(value: &T) -> Result<bytes::Bytes, QueueError> {
    rmp_serde::to_vec_named(value)
        .map(Into::into)
        .map_err(|e| QueueError::Encoding(e.to_string()))
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, QueueError> {
    rmp_serde::from_slice(bytes).map_err(|e| QueueError::Encoding(e.to_string()))
}
