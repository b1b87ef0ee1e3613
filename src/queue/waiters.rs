//! Waiting for records to become final, for every sync request and cancel of a node at once.
//!
//! A KV watch is a consumer on the server. One per waiting request made the server's consumer
//! count, and its work, grow with the number of clients waiting; so each node keeps a single
//! watch over the whole bucket, started on the first wait, and hands final records to the
//! requests waiting for them.
//!
//! No final record is missed: a waiter registers before it reads the record, so a record that
//! became final before the registration is seen by the read, and one that becomes final after
//! it reaches the waiter through the watch. When the watch breaks (NATS reconnecting), it is
//! opened again and every waiter's record is read once more, for what passed in the gap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio::sync::{oneshot, OnceCell};
use uuid::Uuid;

use super::records::{decode, Records};
use super::QueueError;
use crate::model::ExecutionRecord;

/// The requests waiting, by execution.
type Waiting = HashMap<Uuid, Vec<oneshot::Sender<ExecutionRecord>>>;

/// Cheap to clone; every clone shares the one watch.
#[derive(Clone)]
pub struct Waiters {
    records: Records,
    shared: Arc<Shared>,
}

struct Shared {
    waiting: Mutex<Waiting>,
    /// Set once the watch is open (the watching task keeps it open from then on).
    watching: OnceCell<()>,
}

/// How long the watching task waits before opening a broken watch again.
const REOPEN_PAUSE: Duration = Duration::from_millis(500);

impl Waiters {
    pub fn new(records: Records) -> Waiters {
        Waiters {
            records,
            shared: Arc::new(Shared {
                waiting: Mutex::default(),
                watching: OnceCell::new(),
            }),
        }
    }

    /// Waits until the record reaches a final status, or `limit` passes (then returns the
    /// record as it stands, if there is one).
    pub async fn wait_final(
        &self,
        id: &Uuid,
        limit: Duration,
    ) -> Result<Option<ExecutionRecord>, QueueError> {
        self.shared.watching.get_or_try_init(|| self.open()).await?;
        let mut registration = self.register(*id);
        if let Some(found) = self.records.get(id).await? {
            if found.record.status.is_final() {
                return Ok(Some(found.record));
            }
        }
        match tokio::time::timeout(limit, &mut registration.final_record).await {
            Ok(Ok(record)) => Ok(Some(record)),
            // Timed out (or the watching task is gone): the record as it stands.
            _ => Ok(self.records.get(id).await?.map(|found| found.record)),
        }
    }

    fn register(&self, id: Uuid) -> Registration {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.shared.waiting.lock().expect("waiters lock");
        waiting.entry(id).or_default().push(tx);
        Registration {
            id,
            shared: self.shared.clone(),
            final_record: rx,
        }
    }

    /// Opens the watch and hands it to a task that lives as long as any clone of `self`.
    async fn open(&self) -> Result<(), QueueError> {
        let watch = self.records.watch_all().await?;
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(watching(self.records.clone(), shared, watch));
        Ok(())
    }
}

/// One waiter's place; leaving it (answered, timed out, or the client gone) takes it out.
struct Registration {
    id: Uuid,
    shared: Arc<Shared>,
    final_record: oneshot::Receiver<ExecutionRecord>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.final_record.close();
        let mut waiting = self.shared.waiting.lock().expect("waiters lock");
        if let Some(senders) = waiting.get_mut(&self.id) {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                waiting.remove(&self.id);
            }
        }
    }
}

/// Hands final records to their waiters until every `Waiters` is dropped.
async fn watching(records: Records, shared: Weak<Shared>, mut watch: kv::Watch) {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match next {
            Err(_idle) => continue,
            Ok(Some(Ok(entry))) => deliver(&shared, &entry),
            Ok(broken) => {
                let error = broken.and_then(Result::err).map(|e| e.to_string());
                tracing::warn!(?error, "the records watch broke; opening it again");
                watch = reopen(&records).await;
                recheck(&records, &shared).await;
            }
        }
    }
}

fn deliver(shared: &Shared, entry: &kv::Entry) {
    if entry.operation != kv::Operation::Put {
        return;
    }
    let Ok(id) = Uuid::parse_str(&entry.key) else {
        return;
    };
    let mut waiting = shared.waiting.lock().expect("waiters lock");
    if !waiting.contains_key(&id) {
        return;
    }
    match decode::<ExecutionRecord>(&entry.value) {
        Ok(record) if record.status.is_final() => answer(&mut waiting, &id, &record),
        Ok(_) => {}
        Err(e) => tracing::warn!(execution_id = %id, error = %e, "a record could not be read"),
    }
}

fn answer(waiting: &mut Waiting, id: &Uuid, record: &ExecutionRecord) {
    for waiter in waiting.remove(id).unwrap_or_default() {
        let _ = waiter.send(record.clone());
    }
}

async fn reopen(records: &Records) -> kv::Watch {
    loop {
        tokio::time::sleep(REOPEN_PAUSE).await;
        match records.watch_all().await {
            Ok(watch) => return watch,
            Err(e) => tracing::warn!(error = %e, "cannot open the records watch yet"),
        }
    }
}

/// After a gap in the watch: reads every awaited record, and answers those now final.
async fn recheck(records: &Records, shared: &Shared) {
    let ids: Vec<Uuid> = {
        let waiting = shared.waiting.lock().expect("waiters lock");
        waiting.keys().copied().collect()
    };
    for id in ids {
        if let Ok(Some(found)) = records.get(&id).await {
            if found.record.status.is_final() {
                let mut waiting = shared.waiting.lock().expect("waiters lock");
                answer(&mut waiting, &id, &found.record);
            }
        }
    }
}
