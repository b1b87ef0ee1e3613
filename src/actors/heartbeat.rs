//! The node's heartbeat, written on a task of its own from what the Supervisor last reported.
//!
//! Other nodes rescue the jobs of a node whose heartbeat stops (see `queue::ownership`), so
//! the heartbeat must stop exactly when the node can no longer work: never because the
//! Supervisor is busy or waits on something slow, and always once the Supervisor is dead.
//! So the Supervisor only publishes its books into a watch channel (no I/O), and this task
//! writes them every [`nodes::HEARTBEAT`] for as long as the Supervisor runs.

use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorCell, ActorStatus};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::{NodeContext, WorkerContext};
use crate::queue::nodes::{self, Held, NodeEntry};
use crate::queue::QueueError;

/// What the Supervisor knows of the node's work, as of its last message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Beat {
    pub workers: usize,
    pub busy: usize,
    /// False while the node takes no jobs (Docker unreachable).
    pub ready: bool,
    pub holding: Vec<Held>,
}

/// A write that takes longer than this (NATS unreachable) is given up until the next beat.
const WRITE_PATIENCE: Duration = Duration::from_secs(3);

/// A running heartbeat; `stop` ends it (the entry stays until the Supervisor removes it).
pub struct Heartbeat {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Writes the first entry, so that the node is known before it takes a job, then keeps
    /// writing while `supervisor` runs.
    pub async fn start(
        node: Arc<NodeContext>,
        role: &'static str,
        worker: Option<Arc<WorkerContext>>,
        beat: watch::Receiver<Beat>,
        supervisor: ActorCell,
    ) -> Result<Heartbeat, QueueError> {
        let writer = Writer {
            node,
            role,
            worker,
            beat,
        };
        writer.write().await?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(writer.run(supervisor, stopped));
        Ok(Heartbeat { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

struct Writer {
    node: Arc<NodeContext>,
    role: &'static str,
    /// Whose installed languages the entry lists; none on an API-only node.
    worker: Option<Arc<WorkerContext>>,
    beat: watch::Receiver<Beat>,
}

impl Writer {
    async fn run(self, supervisor: ActorCell, mut stopped: oneshot::Receiver<()>) {
        let mut every = tokio::time::interval(nodes::HEARTBEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await; // the first tick is now: `start` wrote already
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = every.tick() => {}
            }
            if !matches!(supervisor.get_status(), ActorStatus::Running) {
                tracing::error!("the Supervisor is gone; heartbeat stopped, so that other nodes rescue this node's jobs");
                return;
            }
            match tokio::time::timeout(WRITE_PATIENCE, self.write()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat not written"),
                Err(_) => tracing::warn!(
                    "heartbeat not written: NATS did not answer in {WRITE_PATIENCE:?}"
                ),
            }
        }
    }

    async fn write(&self) -> Result<(), QueueError> {
        let entry = self.entry();
        nodes::put(&self.node.queue.nodes, &entry).await
    }

    fn entry(&self) -> NodeEntry {
        let beat = self.beat.borrow().clone();
        NodeEntry {
            id: self.node.node_id().to_string(),
            role: self.role.to_string(),
            workers: beat.workers,
            busy: beat.busy,
            languages: self
                .worker
                .as_ref()
                .map(|w| w.installed.names())
                .unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            ready: beat.ready,
            last_heartbeat: chrono::Utc::now(),
            holding: beat.holding,
        }
    }
}
