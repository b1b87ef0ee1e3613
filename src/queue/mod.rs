//! NATS: the durable job queue between API and workers, the execution records, and the
//! embedded server.
//!
//! - [`jetstream`]: stream, consumers, KV bucket set-up; the delivery handle workers ack with.
//! - [`records`]: execution records in KV (create, compare-and-set, watch).
//! - [`batches`]: which executions each batch holds.
//! - [`callbacks`]: webhook delivery state, and the consumer that hands final records over.
//! - [`live`]: a running execution's events and an interactive one's input (core NATS).
//! - [`waiters`]: one watch per node over the records, handing final ones to waiting requests.
//! - [`consumer`]: the worker node's pull loop, taking only as many jobs as workers are free.
//! - [`nodes`]: heartbeats and the cluster view.
//! - [`ownership`]: who may run a job and write its record: the protocol's pure decisions,
//!   its invariants, and property tests over interleavings.
//! - [`rescue`]: publishes again the jobs the stream would never deliver again.
//! - [`embedded`]: the `nats-server -js` child that `serve` runs when no URL is configured.

pub mod batches;
pub mod callbacks;
pub mod consumer;
pub mod embedded;
pub mod jetstream;
pub mod live;
pub mod nodes;
pub mod ownership;
pub mod records;
pub mod rescue;
pub mod waiters;

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::HeaderMap;
use uuid::Uuid;

use crate::config::NatsConfig;
use crate::model::{ExecutionRecord, Job, Priority, Status};
use batches::Batches;
use callbacks::Callbacks;
use records::Records;
use waiters::Waiters;

/// Names other programs depend on (see DESIGN's NATS layout).
pub mod names {
    use crate::model::Priority;

    pub const STREAM: &str = "CODEBEAKER_JOBS";
    pub const EXECUTIONS: &str = "codebeaker-executions";
    pub const NODES: &str = "codebeaker-nodes";
    pub const BATCHES: &str = "codebeaker-batches";
    pub const CALLBACKS: &str = "codebeaker-callbacks";
    /// The durable consumer over the records' stream that webhook deliveries come from.
    pub const WEBHOOKS_CONSUMER: &str = "webhooks";
    pub const EXECUTE: &str = "codebeaker.execute";
    pub const LANGUAGES: &str = "codebeaker.languages";
    pub const WORKERS: &str = "codebeaker.workers";
    pub const QUEUE_GROUP: &str = "codebeaker";
    /// An empty message after each publish, so that idle workers pull at once instead of
    /// waiting for their next poll.
    pub const WAKE: &str = "codebeaker.wake";

    pub fn job_subject(priority: Priority) -> String {
        format!("codebeaker.jobs.{}", priority.as_str())
    }

    /// The durable pull consumer that serves one priority.
    pub fn consumer(priority: Priority) -> String {
        format!("workers-{}", priority.as_str())
    }

    pub fn cancel_subject(id: &uuid::Uuid) -> String {
        format!("codebeaker.cancel.{id}")
    }

    pub const CANCEL_ALL: &str = "codebeaker.cancel.*";

    /// A running execution's live events (see `queue::live`).
    pub fn events_subject(id: &uuid::Uuid) -> String {
        format!("codebeaker.events.{id}")
    }

    /// An interactive execution's input from its client.
    pub fn input_subject(id: &uuid::Uuid) -> String {
        format!("codebeaker.input.{id}")
    }

    /// Headers on job messages (and accepted on `codebeaker.execute` requests).
    pub const REQUEST_ID_HEADER: &str = "X-Request-ID";
    pub const EXECUTION_ID_HEADER: &str = "X-Execution-ID";
    /// How many times the job was published again by a rescue (see `rescue`).
    pub const RESCUES_HEADER: &str = "X-CodeBeaker-Rescues";

    pub fn rescues(headers: Option<&async_nats::HeaderMap>) -> i64 {
        headers
            .and_then(|h| h.get(RESCUES_HEADER))
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("NATS {what} set-up failed: {reason}")]
    Setup { what: &'static str, reason: String },
    #[error("NATS {what} failed: {reason}")]
    Kv { what: &'static str, reason: String },
    #[error("publishing the job failed: {0}")]
    Publish(String),
    #[error("acknowledging the job failed: {0}")]
    Ack(String),
    #[error("a message could not be encoded or decoded: {0}")]
    Encoding(String),
}

impl QueueError {
    fn setup(what: &'static str, e: impl std::fmt::Display) -> QueueError {
        QueueError::Setup {
            what,
            reason: e.to_string(),
        }
    }
    fn kv(what: &'static str, e: impl std::fmt::Display) -> QueueError {
        QueueError::Kv {
            what,
            reason: e.to_string(),
        }
    }
}

/// A node's connection to NATS, with the stream and buckets ready. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    pub records: Records,
    pub batches: Batches,
    pub callbacks: Callbacks,
    /// Where sync requests and cancels wait for final records.
    pub waiters: Waiters,
    pub nodes: kv::Store,
    pub config: NatsConfig,
}

/// What `cancel` found.
pub enum Cancelled {
    /// The job was queued and will never run; or it was running and its container was killed.
    Done(ExecutionRecord),
    /// The job is running and its node was told to kill it, but no final record came yet.
    Requested(ExecutionRecord),
    /// The job had already finished.
    AlreadyFinished(ExecutionRecord),
}

impl Queue {
    /// Connects and makes sure the job stream, its consumers and the KV buckets exist, retrying
    /// both for `patience`: a server may be starting, and a new JetStream cluster needs a few
    /// seconds to elect its leader before it can create anything.
    pub async fn connect(
        url: &str,
        config: &NatsConfig,
        patience: Duration,
    ) -> Result<Queue, QueueError> {
        let deadline = tokio::time::Instant::now() + patience;
        let client = connect_with_patience(url, config, patience).await?;
        let js = async_nats::jetstream::new(client.clone());
        let (records, batches, callbacks, nodes) = loop {
            match prepare(&js, config).await {
                Ok(ready) => break ready,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "JetStream is not ready yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        Ok(Queue {
            client,
            js,
            waiters: Waiters::new(records.clone()),
            records,
            batches,
            callbacks,
            nodes,
            config: config.clone(),
        })
    }

    /// Records the job as queued and publishes it. Idempotent by execution id: a job whose
    /// record exists already is not published again, and JetStream drops a duplicate publish
    /// within its window (Nats-Msg-Id). Returns the record as it now stands. The request and
    /// execution ids ride along in headers, so that the worker's logs carry both.
    pub async fn submit(&self, job: &Job, request_id: &str) -> Result<ExecutionRecord, QueueError> {
        let queued = ExecutionRecord::new(job, Status::Queued);
        if self.records.create(&queued).await?.is_none() {
            if let Some(existing) = self.records.get(&job.id()).await? {
                if !self.republish(&existing.record) {
                    return Ok(existing.record);
                }
            }
        }
        let mut headers = HeaderMap::new();
        let execution_id = job.id().to_string();
        headers.insert("Nats-Msg-Id", execution_id.as_str());
        headers.insert(names::EXECUTION_ID_HEADER, execution_id.as_str());
        headers.insert(names::REQUEST_ID_HEADER, request_id);
        let ack = self
            .js
            .publish_with_headers(
                names::job_subject(job.submission.priority),
                headers,
                records::encode(&job.submission)?,
            )
            .await
            .map_err(|e| QueueError::Publish(e.to_string()))?;
        ack.await.map_err(|e| QueueError::Publish(e.to_string()))?;
        // Best effort: a missed wake-up only means the next poll finds the job.
        let _ = self.client.publish(names::WAKE, bytes::Bytes::new()).await;
        Ok(queued)
    }

    /// Whether a repeated submission should publish again: its record is still queued and
    /// young enough that the stream's duplicate window drops the publish if the first one
    /// landed. (The first submission may have stored the record and then failed to publish,
    /// say while a NATS cluster elected a new leader, and the client retried.)
    fn republish(&self, existing: &ExecutionRecord) -> bool {
        let age = (chrono::Utc::now() - existing.created_at)
            .to_std()
            .unwrap_or_default();
        existing.status == Status::Queued
            && age < Duration::from_secs(self.config.duplicate_window_secs) / 2
    }

    /// Jobs in the stream that no worker has been handed yet, by priority (consumer info).
    pub async fn pending(&self) -> Result<Vec<(Priority, u64)>, QueueError> {
        let stream = self
            .js
            .get_stream_no_info(names::STREAM)
            .await
            .map_err(|e| QueueError::kv("job stream lookup", e))?;
        let mut pending = Vec::with_capacity(Priority::ALL.len());
        for priority in Priority::ALL {
            let info = stream
                .consumer_info(names::consumer(priority))
                .await
                .map_err(|e| QueueError::kv("consumer info", e))?;
            pending.push((priority, info.num_pending));
        }
        Ok(pending)
    }

    /// Cancels a job: a queued one is marked cancelled (and skipped when a worker takes it),
    /// a running one has its container killed by the node running it. None: no such job.
    pub async fn cancel(
        &self,
        id: &Uuid,
        patience: Duration,
    ) -> Result<Option<Cancelled>, QueueError> {
        loop {
            let Some(current) = self.records.get(id).await? else {
                return Ok(None);
            };
            let record = current.record;
            match record.status {
                s if s.is_final() => return Ok(Some(Cancelled::AlreadyFinished(record))),
                Status::Queued => {
                    let cancelled = ExecutionRecord {
                        status: Status::Cancelled,
                        finished_at: Some(chrono::Utc::now()),
                        ..record
                    };
                    if self
                        .records
                        .update(&cancelled, current.revision)
                        .await?
                        .is_some()
                    {
                        return Ok(Some(Cancelled::Done(cancelled)));
                    }
                    // A worker took it meanwhile: go round and cancel it as running.
                }
                _ => {
                    let _ = self
                        .client
                        .publish(names::cancel_subject(id), bytes::Bytes::new())
                        .await;
                    return Ok(Some(match self.waiters.wait_final(id, patience).await? {
                        Some(r) if r.status == Status::Cancelled => Cancelled::Done(r),
                        Some(r) if r.status.is_final() => Cancelled::AlreadyFinished(r),
                        Some(r) => Cancelled::Requested(r),
                        None => Cancelled::Requested(record),
                    }));
                }
            }
        }
    }
}

/// Connects, retrying while the server may still be starting; once connected, the client
/// reconnects on its own for as long as the node runs.
/// Creates what is missing of the stream, consumers and buckets; opens the buckets.
async fn prepare(
    js: &async_nats::jetstream::Context,
    config: &NatsConfig,
) -> Result<(Records, Batches, Callbacks, kv::Store), QueueError> {
    jetstream::ensure_stream(js, config).await?;
    // Every node, not only workers, so that the backlog can be read before a worker joins.
    jetstream::consumers(js, config).await?;
    let records_age = Duration::from_secs(config.records_max_age_secs);
    let executions =
        jetstream::ensure_kv(js, names::EXECUTIONS, records_age, config.replicas).await?;
    let batches = jetstream::ensure_kv(js, names::BATCHES, records_age, config.replicas).await?;
    let callbacks =
        jetstream::ensure_kv(js, names::CALLBACKS, records_age, config.replicas).await?;
    let nodes = jetstream::ensure_kv(js, names::NODES, nodes::KEPT_FOR, config.replicas).await?;
    Ok((
        Records::new(executions),
        Batches::new(batches),
        Callbacks::new(callbacks),
        nodes,
    ))
}

async fn connect_with_patience(
    url: &str,
    config: &NatsConfig,
    patience: Duration,
) -> Result<async_nats::Client, QueueError> {
    let servers = server_addrs(url)?;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let options = connect_options(config)
            .await
            .map_err(|reason| QueueError::Connect {
                url: url.into(),
                reason,
            })?
            .name("codebeaker")
            .connection_timeout(Duration::from_secs(2));
        match options.connect(servers.as_slice()).await {
            // Wrong credentials will not get better by waiting.
            Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {
                return Err(QueueError::Connect {
                    url: url.into(),
                    reason: format!("the server refused our credentials ({e}); see [nats] user/password, token or creds_file"),
                })
            }
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(QueueError::Connect {
                    url: url.into(),
                    reason: e.to_string(),
                })
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Connect options carrying the configured credentials, if any.
pub async fn connect_options(config: &NatsConfig) -> Result<async_nats::ConnectOptions, String> {
    match (
        &config.user,
        &config.password,
        &config.token,
        &config.creds_file,
    ) {
        (None, None, None, None) => Ok(async_nats::ConnectOptions::new()),
        (Some(user), Some(password), None, None) => Ok(
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone()),
        ),
        (None, None, Some(token), None) => {
            Ok(async_nats::ConnectOptions::with_token(token.clone()))
        }
        (None, None, None, Some(path)) => {
            async_nats::ConnectOptions::with_credentials_file(path.clone())
                .await
                .map_err(|e| format!("cannot read the creds file {}: {e}", path.display()))
        }
        _ => Err(
            "set one kind of NATS credentials: user and password, a token, or a creds file".into(),
        ),
    }
}

/// Parses `nats://a:4222,nats://b:4222`: one URL or several, comma-separated.
pub fn server_addrs(url: &str) -> Result<Vec<async_nats::ServerAddr>, QueueError> {
    url.split(',')
        .map(|one| {
            one.trim().parse().map_err(|e| QueueError::Connect {
                url: url.to_string(),
                reason: format!("`{}` is not a NATS URL: {e}", one.trim()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_urls_separated_by_commas() {
        let addrs = server_addrs("nats://127.0.0.1:4222, nats://127.0.0.1:4223").unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].port(), 4223);
        assert!(server_addrs("nats://:bad:port").is_err());
    }
}
