//! Supervisor: starts the node's children linked, gives queued jobs to idle workers, and
//! replaces any child that fails or stops (ractor's default would stop the supervisor too).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use uuid::Uuid;

use super::metrics::{MetricsActor, MetricsMsg};
use super::runtime::RuntimeActor;
use super::worker::{Assignment, WorkerActor, WorkerMsg};
use super::{names, NodeContext};
use crate::model::{ExecutionRecord, Job};

pub enum SupervisorMsg {
    /// Run a job; its record comes back on the port.
    Submit(Box<Job>, RpcReplyPort<ExecutionRecord>),
    /// A worker finished its job and can take another.
    WorkerIdle(ActorId),
    /// A snapshot of the node, for health, tests and operators.
    Status(RpcReplyPort<NodeStatus>),
    /// Start a replacement for a child that died (sent after a backoff delay).
    Respawn(Child),
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

pub struct Supervisor;

struct WorkerSlot {
    actor: ActorRef<WorkerMsg>,
    /// The execution it is running, if any; its container is removed if the worker dies.
    running: Option<Uuid>,
}

pub struct SupervisorState {
    ctx: Arc<NodeContext>,
    children: HashMap<ActorId, Child>,
    workers: HashMap<ActorId, WorkerSlot>,
    idle: VecDeque<ActorId>,
    queue: VecDeque<Assignment>,
    restarts: u64,
    /// Recent restarts per child, for exponential backoff: (count, last restart).
    backoff: HashMap<Child, (u32, Instant)>,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        ctx: Arc<NodeContext>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            children: HashMap::new(),
            workers: HashMap::new(),
            idle: VecDeque::new(),
            queue: VecDeque::new(),
            restarts: 0,
            backoff: HashMap::new(),
            ctx: ctx.clone(),
        };
        state.spawn(&myself, Child::Metrics).await?;
        for language in ctx.languages.all() {
            state
                .spawn(&myself, Child::Runtime(language.name.clone()))
                .await?;
        }
        for index in 0..ctx.config.workers.max(1) {
            state.spawn(&myself, Child::Worker(index)).await?;
        }
        state.publish_workers();
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<SupervisorMsg>,
        _: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("node stopping".into()), Some(Duration::from_secs(5)))
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
            SupervisorMsg::Submit(job, reply) => state.queue.push_back(Assignment { job, reply }),
            SupervisorMsg::WorkerIdle(id) => {
                if let Some(slot) = state.workers.get_mut(&id) {
                    slot.running = None;
                    state.idle.push_back(id);
                }
                state.publish_workers();
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            SupervisorMsg::Respawn(child) => {
                if let Err(e) = state.spawn(&myself, child.clone()).await {
                    tracing::error!(child = ?child, error = %e, "restart failed; trying again");
                    state.schedule_respawn(&myself, child);
                }
            }
        }
        state.dispatch();
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
        tracing::warn!(child = ?child, reason = %why, "child actor died; replacing it");
        state.restarts += 1;
        state.metric(MetricsMsg::Restarted(child.kind()));
        state.schedule_respawn(&myself, child);
        state.publish_workers();
        Ok(())
    }
}

impl SupervisorState {
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        child: Child,
    ) -> Result<(), ActorProcessingErr> {
        let node = self.ctx.node_id().to_string();
        let sup = myself.get_cell();
        let cell: ActorCell = match &child {
            Child::Metrics => {
                Actor::spawn_linked(Some(names::metrics(&node)), MetricsActor, (), sup)
                    .await?
                    .0
                    .get_cell()
            }
            Child::Runtime(name) => {
                let language = self
                    .ctx
                    .languages
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("language {name} is not defined"))?;
                let args = (self.ctx.clone(), language);
                Actor::spawn_linked(Some(names::runtime(&node, name)), RuntimeActor, args, sup)
                    .await?
                    .0
                    .get_cell()
            }
            Child::Worker(index) => {
                let args = (self.ctx.clone(), myself.clone());
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

    /// Drops a dead child from the books; removes the container of the job it was running.
    fn forget(&mut self, cell: &ActorCell) -> Option<Child> {
        let id = cell.get_id();
        let child = self.children.remove(&id)?;
        self.idle.retain(|w| *w != id);
        if let Some(WorkerSlot {
            running: Some(execution),
            ..
        }) = self.workers.remove(&id)
        {
            let sandbox = self.ctx.sandbox.clone();
            tokio::spawn(async move {
                if let Err(e) = sandbox.remove_execution(&execution.to_string()).await {
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

    /// Gives queued jobs to idle workers, oldest first.
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

    fn status(&self) -> NodeStatus {
        NodeStatus {
            workers: self.workers.values().map(|s| s.actor.clone()).collect(),
            busy: self
                .workers
                .values()
                .filter(|s| s.running.is_some())
                .count(),
            queued: self.queue.len(),
            restarts: self.restarts,
        }
    }

    fn publish_workers(&self) {
        let busy = self
            .workers
            .values()
            .filter(|s| s.running.is_some())
            .count();
        self.metric(MetricsMsg::Workers {
            busy,
            idle: self.workers.len() - busy,
        });
    }

    fn metric(&self, msg: MetricsMsg) {
        if let Some(metrics) = super::lookup::<MetricsMsg>(&names::metrics(self.ctx.node_id())) {
            let _ = metrics.cast(msg);
        }
    }
}
