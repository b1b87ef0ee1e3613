//! Cluster membership: each node's heartbeat in the `codebeaker-nodes` KV bucket, and the
//! list that `GET /workers`, `codebeaker.workers` and `codebeaker cluster` show.

use std::time::Duration;

use async_nats::jetstream::kv;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::{records, QueueError};

/// How often a node writes its entry.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node silent for three heartbeats is gone (killed, cut off) and is no longer listed.
const GONE_AFTER: Duration = Duration::from_secs(15);

/// A node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub id: String,
    pub role: String,
    pub workers: usize,
    pub busy: usize,
    /// What it runs; empty on an API-only node.
    pub languages: Vec<String>,
    pub version: String,
    /// False while it takes no jobs (Docker unreachable).
    pub ready: bool,
    pub last_heartbeat: chrono::DateTime<chrono::Utc>,
}

pub async fn put(nodes: &kv::Store, entry: &NodeEntry) -> Result<(), QueueError> {
    nodes
        .put(&entry.id, records::encode(entry)?)
        .await
        .map(drop)
        .map_err(|e| QueueError::kv("heartbeat", e))
}

/// The nodes alive now, by id.
pub async fn list(nodes: &kv::Store) -> Result<Vec<NodeEntry>, QueueError> {
    let keys: Vec<String> = nodes
        .keys()
        .await
        .map_err(|e| QueueError::kv("node list", e))?
        .try_collect()
        .await
        .map_err(|e| QueueError::kv("node list", e))?;
    let cutoff = chrono::Utc::now() - GONE_AFTER;
    let mut alive = Vec::with_capacity(keys.len());
    for key in keys {
        let entry = nodes
            .get(&key)
            .await
            .map_err(|e| QueueError::kv("node entry", e))?;
        // Deleted since listed, or from an incompatible version: not a live node of ours.
        if let Some(entry) = entry.and_then(|bytes| records::decode::<NodeEntry>(&bytes).ok()) {
            if entry.last_heartbeat > cutoff {
                alive.push(entry);
            }
        }
    }
    alive.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(alive)
}
