//! The actor tree of one node (ractor):
//!
//! ```text
//! Supervisor
//! ├── MetricsActor      owns the Prometheus registry
//! ├── RuntimeActor × L  one per language: checks its image, hands out fresh containers
//! └── WorkerActor × N   each runs one job at a time, start to finish
//! ```
//! The Supervisor queues jobs, gives each to an idle worker, and replaces any child that dies.

pub mod metrics;
pub mod runtime;
pub mod supervisor;
pub mod worker;

use ractor::ActorRef;

use crate::config::Config;
use crate::languages::Languages;
use crate::sandbox::Sandbox;

/// What every actor of a node shares, read-only.
pub struct NodeContext {
    pub config: Config,
    pub languages: Languages,
    pub sandbox: Sandbox,
}

impl NodeContext {
    pub fn node_id(&self) -> &str {
        &self.config.node_id
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
