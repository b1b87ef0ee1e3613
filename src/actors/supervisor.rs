//! Supervisor: starts the node's children linked, gives jobs from the queue consumer to idle
//! workers, replaces any child that fails or stops (ractor's default would stop the supervisor
//! too), writes the node's heartbeat, and drains the node on shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use super::metrics::{MetricsActor, MetricsMsg};
use super::runtime::RuntimeActor;
use super::worker::{Assignment, WorkerActor, WorkerMsg};
use super::{names, NodeContext, WorkerContext};
use crate::queue::records;

const HEARTBEAT: Duration = Duration::from_secs(5);

pub enum SupervisorMsg {
    /// A job from the queue consumer, for an idle worker.
    Submit(Box<Assignment>),
    /// A worker finished its job and can take another.
    WorkerIdle(ActorId),
    /// How many more jobs the workers can take now.
    Capacity(RpcReplyPort<usize>),
    /// A snapshot of the node, for health, tests and operators.
    Status(RpcReplyPort<NodeStatus>),
    /// Start a replacement for a child that died (sent after a backoff delay).
    Respawn(Child),
    /// Write this node's entry in the nodes bucket.
    Heartbeat,
    /// Stop taking jobs: hand back the ones not started; answer once no worker is busy.
    Drain(RpcReplyPort<()>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Child {
    Metrics,
    Runtime(String),
    Worker(usize),
}

impl Child {
    fn kind(&self) -> &'static str {
        match self {
            Child::Metrics => "metrics",
            Child::Runtime(_) => "runtime",
            Child::Worker(_) => "worker",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub workers: Vec<ActorRef<WorkerMsg>>,
    pub busy: usize,
    pub queued: usize,
    pub restarts: u64,
}

/// Asks the Supervisor for a snapshot; None when it does not answer within two seconds.
pub async fn status(supervisor: &ActorRef<SupervisorMsg>) -> Option<NodeStatus> {
    match supervisor
        .call(SupervisorMsg::Status, Some(Duration::from_secs(2)))
        .await
    {
        Ok(ractor::rpc::CallResult::Success(status)) => Some(status),
        _ => None,
    }
}

/// A node's entry in the `codebeaker-nodes` bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub role: String,
    pub workers: usize,
    pub busy: usize,
    pub languages: Vec<String>,
    pub version: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

pub struct SupervisorArgs {
    pub node: Arc<NodeContext>,
    pub role: &'static str,
    /// The worker side; `None` on an API-only node.
    pub worker: Option<Arc<WorkerContext>>,
    /// Signalled whenever a worker becomes free, to wake the queue consumer.
    pub freed: Arc<Notify>,
}

pub struct Supervisor;

struct WorkerSlot {
    actor: ActorRef<WorkerMsg>,
    /// The execution it is running, if any; its container is removed if the worker dies.
    running: Option<Uuid>,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    children: HashMap<ActorId, Child>,
    workers: HashMap<ActorId, WorkerSlot>,
    idle: VecDeque<ActorId>,
    queue: VecDeque<Box<Assignment>>,
    restarts: u64,
    /// Recent restarts per child, for exponential backoff: (count, last restart).
    backoff: HashMap<Child, (u32, Instant)>,
    /// Set by Drain: no new jobs, no respawns; the port is answered when the last job ends.
    draining: Option<Vec<RpcReplyPort<()>>>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            args,
            children: HashMap::new(),
            workers: HashMap::new(),
            idle: VecDeque::new(),
            queue: VecDeque::new(),
            restarts: 0,
            backoff: HashMap::new(),
            draining: None,
        };
        state.spawn(&myself, Child::Metrics).await?;
        if let Some(worker) = state.args.worker.clone() {
            for language in worker.node.languages.all() {
                state
                    .spawn(&myself, Child::Runtime(language.name.clone()))
                    .await?;
            }
            for index in 0..worker.node.config.workers.max(1) {
                state.spawn(&myself, Child::Worker(index)).await?;
            }
        }
        state.publish_workers();
        myself.send_interval(HEARTBEAT, || SupervisorMsg::Heartbeat);
        myself.cast(SupervisorMsg::Heartbeat)?;
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("node stopping".into()), Some(Duration::from_secs(5)))
            .await;
        let _ = state
            .args
            .node
            .queue
            .nodes
            .delete(state.args.node.node_id())
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Submit(assignment) if state.draining.is_some() => {
                tokio::spawn(async move { assignment.delivery.nak().await });
            }
            SupervisorMsg::Submit(assignment) => state.queue.push_back(assignment),
            SupervisorMsg::WorkerIdle(id) => {
                if let Some(slot) = state.workers.get_mut(&id) {
                    slot.running = None;
                    state.idle.push_back(id);
                }
                state.args.freed.notify_one();
                state.publish_workers();
            }
            SupervisorMsg::Capacity(reply) => {
                let free = if state.draining.is_some() {
                    0
                } else {
                    state.idle.len().saturating_sub(state.queue.len())
                };
                let _ = reply.send(free);
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SupervisorMsg::Respawn(_) if state.draining.is_some() => {}
            SupervisorMsg::Respawn(child) => {
                if let Err(e) = state.spawn(&myself, child.clone()).await {
                    tracing::error!(child = ?child, error = %e, "restart failed; trying again");
                    state.schedule_respawn(&myself, child);
                }
                state.args.freed.notify_one();
            }
            SupervisorMsg::Heartbeat => state.heartbeat(),
            SupervisorMsg::Drain(reply) => {
                for assignment in state.queue.drain(..) {
                    tokio::spawn(async move { assignment.delivery.nak().await });
                }
                state.draining.get_or_insert_with(Vec::new).push(reply);
            }
        }
        state.dispatch();
        state.answer_drain();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, err.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        let Some(child) = state.forget(&cell) else {
            return Ok(());
        };
        state.publish_workers();
        state.answer_drain();
        if state.draining.is_some() {
            return Ok(());
        }
        tracing::warn!(child = ?child, reason = %why, "child actor died; replacing it");
        state.restarts += 1;
        state.metric(MetricsMsg::Restarted(child.kind()));
        state.schedule_respawn(&myself, child);
        Ok(())
    }
}

impl SupervisorState {
    fn node_id(&self) -> &str {
        self.args.node.node_id()
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let node = self.node_id().to_string();
        let sup = myself.get_cell();
        let worker_ctx = || {
            self.args
                .worker
                .clone()
                .ok_or("this node has no worker side")
        };
        let cell: ActorCell = match &child {
            Child::Metrics => Actor::spawn_linked(
                Some(names::metrics(&node)),
                MetricsActor,
                self.args.role,
                sup,
            )
            .await?
            .0
            .get_cell(),
            Child::Runtime(name) => {
                let ctx = worker_ctx()?;
                let language = ctx
                    .node
                    .languages
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("language {name} is not defined"))?;
                Actor::spawn_linked(
                    Some(names::runtime(&node, name)),
                    RuntimeActor,
                    (ctx, language),
                    sup,
                )
                .await?
                .0
                .get_cell()
            }
            Child::Worker(index) => {
                let args = (worker_ctx()?, myself.clone());
                let (actor, _) =
                    Actor::spawn_linked(Some(names::worker(&node, *index)), WorkerActor, args, sup)
                        .await?;
                self.workers.insert(
                    actor.get_id(),
                    WorkerSlot {
                        actor: actor.clone(),
                        running: None,
                    },
                );
                self.idle.push_back(actor.get_id());
                actor.get_cell()
            }
        };
        self.children.insert(cell.get_id(), child);
        Ok(())
    }

    /// Drops a dead child from the books; removes the container of the job it was running (the
    /// job itself is redelivered by JetStream once its ack_wait passes).
    fn forget(&mut self, cell: &ActorCell) -> Option<Child> {
        let id = cell.get_id();
        let child = self.children.remove(&id)?;
        self.idle.retain(|w| *w != id);
        if let (
            Some(WorkerSlot {
                running: Some(execution),
                ..
            }),
            Some(ctx),
        ) = (self.workers.remove(&id), &self.args.worker)
        {
            let ctx = ctx.clone();
            ctx.running.remove(&execution);
            tokio::spawn(async move {
                if let Err(e) = ctx.sandbox.remove_execution(&execution.to_string()).await {
                    tracing::warn!(%execution, error = %e, "could not remove a dead worker's container");
                }
            });
        }
        Some(child)
    }

    fn schedule_respawn(&mut self, myself: &ActorRef<SupervisorMsg>, child: Child) {
        let now = Instant::now();
        let entry = self.backoff.entry(child.clone()).or_insert((0, now));
        // A child that stayed up for a minute starts its backoff afresh.
        if now.duration_since(entry.1) > Duration::from_secs(60) {
            entry.0 = 0;
        }
        let delay = Duration::from_millis(100) * 2u32.pow(entry.0.min(6));
        *entry = (entry.0 + 1, now);
        myself.send_after(delay, move || SupervisorMsg::Respawn(child));
    }

    /// Gives waiting jobs to idle workers, oldest first.
    fn dispatch(&mut self) {
        let mut changed = false;
        while !self.queue.is_empty() {
            let Some(id) = self.idle.pop_front() else {
                break;
            };
            let Some(slot) = self.workers.get_mut(&id) else {
                continue;
            };
            let assignment = self.queue.pop_front().expect("queue is not empty");
            let execution = assignment.job.execution_id;
            match slot.actor.cast(WorkerMsg::Run(assignment)) {
                Ok(()) => slot.running = Some(execution),
                Err(ractor::MessagingErr::SendErr(WorkerMsg::Run(back))) => {
                    self.queue.push_front(back)
                }
                Err(_) => {}
            }
            changed = true;
        }
        if changed {
            self.publish_workers();
        }
    }

    fn busy(&self) -> usize {
        self.workers
            .values()
            .filter(|s| s.running.is_some())
            .count()
    }

    fn answer_drain(&mut self) {
        if self.busy() == 0 {
            if let Some(waiting) = self.draining.as_mut() {
                for reply in waiting.drain(..) {
                    let _ = reply.send(());
                }
            }
        }
    }

    fn status(&self) -> NodeStatus {
        NodeStatus {
            workers: self.workers.values().map(|s| s.actor.clone()).collect(),
            busy: self.busy(),
            queued: self.queue.len(),
            restarts: self.restarts,
        }
    }

    fn heartbeat(&self) {
        let node = &self.args.node;
        let beat = Heartbeat {
            node: node.node_id().to_string(),
            role: self.args.role.to_string(),
            workers: self.workers.len(),
            busy: self.busy(),
            languages: node
                .languages
                .names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            at: chrono::Utc::now(),
        };
        let (queue, key) = (node.queue.clone(), node.node_id().to_string());
        let metrics = super::lookup::<MetricsMsg>(&names::metrics(self.node_id()));
        tokio::spawn(async move {
            if let Ok(bytes) = records::encode(&beat) {
                if let Err(e) = queue.nodes.put(key, bytes).await {
                    tracing::warn!(error = %e, "heartbeat not written");
                }
            }
            match queue.pending().await {
                Ok(pending) => {
                    if let Some(metrics) = metrics {
                        let _ = metrics.cast(MetricsMsg::QueuePending(pending));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the queue's backlog"),
            }
        });
    }

    fn publish_workers(&self) {
        let busy = self.busy();
        self.metric(MetricsMsg::Workers {
            busy,
            idle: self.workers.len() - busy,
        });
    }

    fn metric(&self, msg: MetricsMsg) {
        if let Some(metrics) = super::lookup::<MetricsMsg>(&names::metrics(self.node_id())) {
            let _ = metrics.cast(msg);
        }
    }
}
