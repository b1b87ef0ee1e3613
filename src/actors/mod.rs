//! The actor tree of one node (ractor):
//!
//! ```text
//! Supervisor
//! ├── MetricsActor      owns the Prometheus registry
//! ├── RuntimeActor × L  one per language: keeps a warm pool, hands out
//! │                     containers (warm when one fits, else created for the job)
//! └── WorkerActor × N   each runs one job at a time, start to finish; N follows the backlog
//! ```
//! The queue consumer (`queue::consumer`) pulls jobs from JetStream as fast as the Supervisor
//! reports free workers; the Supervisor gives each to an idle worker, replaces any child that
//! dies or is stuck, checks Docker ([`health`]), sizes the pool ([`scaling`]), and reports
//! what its workers hold to the heartbeat, which runs on a task of its own ([`heartbeat`]).
//! A worker runs its job's steps through [`execution`], which leases the cells.
//! An API-only node runs the Supervisor with metrics only.

pub mod execution;
pub mod health;
pub mod heartbeat;
pub mod metrics;
pub mod runtime;
pub mod scaling;
pub mod supervisor;
pub mod worker;

use std::sync::Arc;

use dashmap::DashMap;
use ractor::ActorRef;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::config::Config;
use crate::languages::Languages;
use crate::queue::ownership::Local;
use crate::queue::Queue;
use crate::sandbox::Sandbox;

/// What every part of a node shares.
pub struct NodeContext {
    pub config: Config,
    pub languages: Languages,
    pub queue: Queue,
}

impl NodeContext {
    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }
}

/// What the worker side of a node shares: Docker, and the jobs running here (so that a cancel
/// request, or a drain running out of time, can reach them).
pub struct WorkerContext {
    pub node: Arc<NodeContext>,
    pub sandbox: Sandbox,
    /// The jobs this node's workers hold, each with its kill switch (see `ownership`).
    pub running: Local<oneshot::Sender<Stop>>,
    /// The container of each job running here: a pooled one carries no execution label, so
    /// this is how a dead worker's container is found.
    pub containers: DashMap<Uuid, String>,
    /// The languages whose images this node has: the ones it runs and advertises.
    pub installed: crate::sandbox::images::Installed,
    /// The pools' warm-ups under way. A node that stops waits for them, so that its last
    /// sweep finds every container they created (one per language may be in flight).
    pub warmups: tokio_util::task::TaskTracker,
}

/// Why a running job's container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A client cancelled it: it ends `cancelled`.
    Cancel,
    /// This node is leaving: the job goes back to the queue (NAK), for another node at once.
    HandBack,
}

impl WorkerContext {
    /// Kills the named job if it runs on this node. True when it did.
    pub fn cancel(&self, id: &Uuid) -> bool {
        self.running
            .take(id)
            .is_some_and(|kill| kill.send(Stop::Cancel).is_ok())
    }

    /// Removes the container of a job whose worker died, wherever it is in its life.
    pub async fn remove_container_of(&self, execution: &Uuid) {
        if let Some((_, id)) = self.containers.remove(execution) {
            self.sandbox.remove(&id).await;
        }
        // Created but not yet handed over: found by its label.
        if let Err(e) = self.sandbox.remove_execution(&execution.to_string()).await {
            tracing::warn!(%execution, error = %e, "could not remove a dead worker's container");
        }
    }

    /// Stops every job running here and hands each back to the queue; returns how many.
    pub fn hand_back_all(&self) -> usize {
        self.running
            .take_all()
            .into_iter()
            .filter(|kill| !kill.is_closed())
            .map(|kill| kill.send(Stop::HandBack))
            .filter(Result::is_ok)
            .count()
    }
}

/// Registered actor names, scoped by node so that several nodes can share one process (tests).
pub mod names {
    pub fn supervisor(node: &str) -> String {
        format!("{node}/supervisor")
    }
    pub fn metrics(node: &str) -> String {
        format!("{node}/metrics")
    }
    pub fn runtime(node: &str, language: &str) -> String {
        format!("{node}/runtime/{language}")
    }
    pub fn worker(node: &str, index: usize) -> String {
        format!("{node}/worker/{index}")
    }
}

/// Looks up a live actor by its registered name.
pub fn lookup<M: ractor::Message>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}
