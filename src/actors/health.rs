//! What the Supervisor looks at on each check, gathered on a task of its own so that a hung
//! Docker or NATS never blocks the Supervisor: whether Docker answers, the cluster's backlog,
//! and which children do not answer a ping.

use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef};

use super::runtime::RuntimeMsg;
use super::worker::WorkerMsg;
use super::WorkerContext;
use crate::model::Priority;
use crate::queue::Queue;

/// How long a ping, Docker's included, may take before its target counts as not answering.
const PATIENCE: Duration = Duration::from_secs(2);

pub struct Probe {
    /// `None` on a node without a worker side; else why Docker is unusable, if it is.
    pub docker: Option<Result<(), String>>,
    /// `None` when NATS did not answer.
    pub pending: Option<Vec<(Priority, u64)>>,
    pub unresponsive: Vec<ActorCell>,
}

/// Who to ask. Only idle workers are pinged: a busy one answers only after its job.
pub struct Targets {
    pub worker: Option<Arc<WorkerContext>>,
    pub queue: Queue,
    pub idle_workers: Vec<ActorRef<WorkerMsg>>,
    pub runtimes: Vec<ActorRef<RuntimeMsg>>,
}

pub async fn probe(targets: Targets) -> Probe {
    let docker = async {
        let worker = targets.worker.as_ref()?;
        Some(
            match tokio::time::timeout(PATIENCE, worker.sandbox.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("Docker did not answer a ping within {PATIENCE:?}")),
            },
        )
    };
    let pending = async {
        match tokio::time::timeout(PATIENCE, targets.queue.pending()).await {
            Ok(Ok(pending)) => Some(pending),
            _ => None,
        }
    };
    let workers = futures::future::join_all(
        targets
            .idle_workers
            .iter()
            .map(|w| answers(w, WorkerMsg::Ping)),
    );
    let runtimes = futures::future::join_all(
        targets
            .runtimes
            .iter()
            .map(|r| answers(r, RuntimeMsg::Ping)),
    );
    let (docker, pending, workers, runtimes) = futures::join!(docker, pending, workers, runtimes);
    let unresponsive = workers.into_iter().chain(runtimes).flatten().collect();
    Probe {
        docker,
        pending,
        unresponsive,
    }
}

/// None when the actor answers its ping in time; its cell when it does not.
async fn answers<M: ractor::Message>(
    actor: &ActorRef<M>,
    ping: fn(ractor::RpcReplyPort<()>) -> M,
) -> Option<ActorCell> {
    match actor.call(ping, Some(PATIENCE)).await {
        Ok(CallResult::Success(())) => None,
        _ => Some(actor.get_cell()),
    }
}
