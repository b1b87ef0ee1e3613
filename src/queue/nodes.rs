//! Cluster membership: each node's heartbeat in the `codebeaker-nodes` KV bucket, the list
//! that `GET /workers`, `codebeaker.workers` and `codebeaker cluster` show, and the answer to
//! "is the node a running record names still working on it?" (answered by `ownership`).

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{records, QueueError};

/// How often a node writes its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node silent for three heartbeats is gone (killed, cut off) and is no longer listed.
pub const GONE_AFTER: Duration = Duration::from_secs(15);
/// How long the bucket keeps an entry nobody refreshes: long enough for a surviving node to
/// rescue the jobs a dead node held (see `rescue`), even after a cluster-wide outage.
pub const KEPT_FOR: Duration = Duration::from_secs(600);

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeEntry {
    pub id: String,
    pub role: String,
    pub workers: usize,
    pub busy: usize,
    /// The languages whose images it has: what it runs now. Empty on an API-only node.
    pub languages: Vec<String>,
    pub version: String,
    /// False while it takes no jobs (Docker unreachable).
    pub ready: bool,
    pub last_heartbeat: chrono::DateTime<chrono::Utc>,
    /// The job messages its workers hold (running or about to), so that another node can tell
    /// a duplicate delivery from a lost job, and rescue the jobs if this node dies.
    #[serde(default)]
    pub holding: Vec<Held>,
}

/// One job message a node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Held {
    pub execution_id: uuid::Uuid,
    /// Its sequence in the job stream, where its message stays until acked.
    pub stream_seq: u64,
}

impl NodeEntry {
    /// A worker node's entry with the given heartbeat and holdings (for tests of decisions).
    #[cfg(test)]
    pub(crate) fn worker(
        id: &str,
        last_heartbeat: chrono::DateTime<chrono::Utc>,
        holding: Vec<Held>,
    ) -> NodeEntry {
        NodeEntry {
            id: id.into(),
            role: "worker".into(),
            workers: 2,
            busy: holding.len(),
            languages: vec![],
            version: "0".into(),
            ready: true,
            last_heartbeat,
            holding,
        }
    }

    pub fn is_gone(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.last_heartbeat <= now - GONE_AFTER
    }
}

pub async fn put(nodes: &kv::Store, entry: &NodeEntry) -> Result<(), QueueError> {
    nodes
        .put(&entry.id, records::encode(entry)?)
        .await
        .map(drop)
        .map_err(|e| QueueError::kv("heartbeat", e))
}

/// One node's entry, however old.
pub async fn get(nodes: &kv::Store, id: &str) -> Result<Option<NodeEntry>, QueueError> {
    let entry = nodes
        .get(id)
        .await
        .map_err(|e| QueueError::kv("node entry", e))?;
    // From an incompatible version: not a node of ours.
    Ok(entry.and_then(|bytes| records::decode::<NodeEntry>(&bytes).ok()))
}

pub async fn remove(nodes: &kv::Store, id: &str) -> Result<(), QueueError> {
    nodes
        .delete(id)
        .await
        .map_err(|e| QueueError::kv("node entry removal", e))
}

/// The nodes alive now, by id.
pub async fn list(nodes: &kv::Store) -> Result<Vec<NodeEntry>, QueueError> {
    let now = chrono::Utc::now();
    let mut alive = all(nodes).await?;
    alive.retain(|e| !e.is_gone(now));
    Ok(alive)
}

/// Every entry in the bucket, the gone nodes' too, by id.
pub async fn all(nodes: &kv::Store) -> Result<Vec<NodeEntry>, QueueError> {
    // The keys come from the stream's subject counts rather than the client's `keys()`: that
    // creates a consumer, which a NATS cluster that just lost a server can fail to create for
    // minutes, while this is one request to the stream's leader.
    let subjects: Vec<(String, usize)> = nodes
        .stream
        .info_with_subjects(format!("{}>", nodes.prefix))
        .await
        .map_err(|e| QueueError::kv("node list", e))?
        .try_collect()
        .await
        .map_err(|e| QueueError::kv("node list", e))?;
    let mut entries = Vec::with_capacity(subjects.len());
    for (subject, _) in subjects {
        let key = subject
            .strip_prefix(nodes.prefix.as_str())
            .unwrap_or(&subject);
        // None: deleted.
        entries.extend(get(nodes, key).await?);
    }
    entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(entries)
}
