//! Supervisor: starts the node's children linked, gives jobs from the queue consumer to idle
//! workers, replaces any child that fails or stops (ractor's default would stop the supervisor
//! too), reports what its workers hold for the heartbeat ([`super::heartbeat`]), and drains
//! the node on shutdown. It never waits on Docker: checks run on tasks of their own, and
//! spawning a child does no Docker call, so a hung engine cannot stop the heartbeat.
//!
//! On every check (`supervision.check_interval_ms`) it also: kills and replaces a worker still
//! on a job past the job's deadline plus a grace period; kills and replaces an idle worker or a
//! runtime that does not answer a ping; stops taking jobs while Docker does not answer (the node
//! is then not ready) and resumes when it does; and sizes the worker pool to the backlog
//! ([`super::scaling`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::health::{self, Probe, Targets};
use super::heartbeat::Beat;
use super::metrics::{MetricsActor, MetricsMsg};
use super::runtime::{RuntimeActor, RuntimeMsg};
use super::scaling::Scaler;
use super::worker::{Assignment, WorkerActor, WorkerMsg};
use super::{names, NodeContext, WorkerContext};
use crate::queue::nodes::{self, Held};

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
    /// Time for the health and scaling check.
    Check,
    /// What the check found (gathered off the Supervisor's task).
    Probed(Probe),
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
    /// Why this node takes no jobs now (Docker does not answer), if it does not.
    pub not_ready: Option<String>,
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

pub struct SupervisorArgs {
    pub node: Arc<NodeContext>,
    pub role: &'static str,
    /// The worker side; `None` on an API-only node.
    pub worker: Option<Arc<WorkerContext>>,
    /// Signalled whenever a worker becomes free, to wake the queue consumer.
    pub freed: Arc<Notify>,
    /// Where the heartbeat reads what the node is doing.
    pub beat: watch::Sender<Beat>,
}

pub struct Supervisor;

struct WorkerSlot {
    actor: ActorRef<WorkerMsg>,
    /// The execution it is running, if any; its container is removed if the worker dies.
    running: Option<Running>,
}

struct Running {
    execution: Uuid,
    /// Its job message's place in the stream, published in the heartbeat.
    stream_seq: u64,
    /// When the job must be over by its own limits; the worker is stuck a grace period later.
    deadline: Instant,
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
    scaler: Scaler,
    /// Index for the next worker's registered name (names are never reused).
    next_worker: usize,
    /// Why Docker cannot be used, while it cannot.
    docker_down: Option<String>,
    /// A check is under way; the next tick is skipped rather than piled on.
    checking: bool,
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
        let config = &args.node.config;
        let (min, max) = config.worker_range();
        let scaler = Scaler::new(
            min,
            max,
            Duration::from_secs(config.supervision.scale_down_after_secs),
        );
        let check = Duration::from_millis(config.supervision.check_interval_ms.max(100));
        let mut state = SupervisorState {
            args,
            children: HashMap::new(),
            workers: HashMap::new(),
            idle: VecDeque::new(),
            queue: VecDeque::new(),
            restarts: 0,
            backoff: HashMap::new(),
            draining: None,
            scaler,
            next_worker: 0,
            docker_down: None,
            checking: false,
        };
        if let Err(e) = state.start_children(&myself, min).await {
            // Linked children outlive a Supervisor that never started: stop them here.
            myself
                .stop_children_and_wait(Some("node start failed".into()), None)
                .await;
            return Err(e);
        }
        state.publish_workers();
        state.report();
        myself.send_interval(check, || SupervisorMsg::Check);
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
        let node = &state.args.node;
        let _ = nodes::remove(&node.queue.nodes, node.node_id()).await;
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
                let free = if state.draining.is_some() || state.docker_down.is_some() {
                    0
                } else {
                    state.idle.len().saturating_sub(state.queue.len())
                };
                let _ = reply.send(free);
            }
            SupervisorMsg::Check if state.checking => {}
            SupervisorMsg::Check => {
                state.replace_stuck_workers();
                state.checking = true;
                let targets = state.probe_targets();
                let myself = myself.clone();
                tokio::spawn(async move {
                    let _ = myself.cast(SupervisorMsg::Probed(health::probe(targets).await));
                });
            }
            SupervisorMsg::Probed(probe) => {
                state.checking = false;
                state.apply(&myself, probe).await;
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
            SupervisorMsg::Drain(reply) => {
                for assignment in state.queue.drain(..) {
                    tokio::spawn(async move { assignment.delivery.nak().await });
                }
                state.draining.get_or_insert_with(Vec::new).push(reply);
            }
        }
        state.dispatch();
        state.answer_drain();
        state.report();
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
        state.report();
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
                self.next_worker = self.next_worker.max(index + 1);
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
                running: Some(Running { execution, .. }),
                ..
            }),
            Some(ctx),
        ) = (self.workers.remove(&id), &self.args.worker)
        {
            let ctx = ctx.clone();
            ctx.running.evict(&execution);
            tokio::spawn(async move { ctx.remove_container_of(&execution).await });
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
            let running = Running {
                execution: assignment.job.id(),
                stream_seq: assignment.delivery.stream_seq(),
                deadline: Instant::now() + assignment.job.time_budget(),
            };
            match slot.actor.cast(WorkerMsg::Run(assignment)) {
                Ok(()) => slot.running = Some(running),
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
            not_ready: self.docker_down.clone(),
        }
    }

    /// Tells the heartbeat what the node is doing now.
    fn report(&self) {
        self.args.beat.send_replace(Beat {
            workers: self.workers.len(),
            busy: self.busy(),
            ready: self.docker_down.is_none(),
            holding: self.holding(),
        });
    }

    /// The job messages this node holds: with its workers, and waiting for one.
    fn holding(&self) -> Vec<Held> {
        let running = self.workers.values().filter_map(|s| s.running.as_ref());
        let running = running.map(|r| Held {
            execution_id: r.execution,
            stream_seq: r.stream_seq,
        });
        let waiting = self.queue.iter().map(|a| Held {
            execution_id: a.job.id(),
            stream_seq: a.delivery.stream_seq(),
        });
        running.chain(waiting).collect()
    }

    async fn start_children(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        workers: usize,
    ) -> Result<(), ActorProcessingErr> {
        self.spawn(myself, Child::Metrics).await?;
        if let Some(worker) = self.args.worker.clone() {
            for language in worker.node.languages.all() {
                self.spawn(myself, Child::Runtime(language.name.clone()))
                    .await?;
            }
            self.add_workers(myself, workers).await?;
        }
        Ok(())
    }

    async fn add_workers(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        n: usize,
    ) -> Result<(), ActorProcessingErr> {
        for _ in 0..n {
            self.spawn(myself, Child::Worker(self.next_worker)).await?;
        }
        Ok(())
    }

    /// Stops up to `n` idle workers for good (they are not replaced).
    fn retire_workers(&mut self, n: usize) -> usize {
        let mut retired = 0;
        while retired < n {
            let Some(id) = self.idle.pop_back() else {
                break;
            };
            self.children.remove(&id);
            if let Some(slot) = self.workers.remove(&id) {
                slot.actor.stop(Some("scaled down".into()));
                retired += 1;
            }
        }
        retired
    }

    /// A worker still on its job a grace period past the job's deadline is stuck (Docker hung,
    /// say): kill it. Its death removes the job's container and a replacement is started; the
    /// job itself is redelivered once its in-progress acks stop.
    fn replace_stuck_workers(&self) {
        let grace = Duration::from_secs(self.args.node.config.supervision.stuck_grace_secs);
        let now = Instant::now();
        for slot in self.workers.values() {
            if let Some(running) = slot.running.as_ref().filter(|r| now > r.deadline + grace) {
                tracing::warn!(
                    execution_id = %running.execution,
                    past_deadline_secs = (now - running.deadline).as_secs(),
                    "worker stuck on a job past its deadline; replacing it"
                );
                slot.actor.kill();
            }
        }
    }

    fn probe_targets(&self) -> Targets {
        let node = self.node_id();
        Targets {
            worker: self.args.worker.clone(),
            queue: self.args.node.queue.clone(),
            idle_workers: self
                .idle
                .iter()
                .filter_map(|id| self.workers.get(id))
                .map(|slot| slot.actor.clone())
                .collect(),
            runtimes: self
                .children
                .values()
                .filter_map(|child| match child {
                    Child::Runtime(language) => {
                        super::lookup::<RuntimeMsg>(&names::runtime(node, language))
                    }
                    _ => None,
                })
                .collect(),
        }
    }

    /// Acts on what a check found: Docker's state, unresponsive children, the backlog.
    async fn apply(&mut self, myself: &ActorRef<SupervisorMsg>, probe: Probe) {
        match (probe.docker, self.docker_down.take()) {
            (Some(Err(why)), was) => {
                if was.is_none() {
                    tracing::error!(reason = %why, "Docker is unreachable: not ready, taking no jobs");
                }
                self.docker_down = Some(why);
            }
            (_, Some(_)) => {
                tracing::info!("Docker answers again: ready, taking jobs");
                self.args.freed.notify_one();
            }
            _ => {}
        }
        for cell in probe.unresponsive {
            let busy = self
                .workers
                .get(&cell.get_id())
                .is_some_and(|slot| slot.running.is_some());
            // A worker that took a job since the ping was sent answers only after it.
            if !busy && self.children.contains_key(&cell.get_id()) {
                tracing::warn!(actor = ?cell.get_name(), "child does not answer a ping; replacing it");
                cell.kill();
            }
        }
        if let Some(pending) = probe.pending {
            let backlog = pending.iter().map(|(_, n)| n).sum();
            self.metric(MetricsMsg::QueuePending(pending));
            self.scale(myself, backlog).await;
        }
    }

    /// Sizes the worker pool to the backlog (not while draining or while Docker is down).
    async fn scale(&mut self, myself: &ActorRef<SupervisorMsg>, backlog: u64) {
        if self.args.worker.is_none() || self.draining.is_some() || self.docker_down.is_some() {
            return;
        }
        let (total, busy) = (self.workers.len(), self.busy());
        let target = self.scaler.target(Instant::now(), total, busy, backlog);
        let (changed, direction) = if target > total {
            // The root actor never stops on an error: a worker that cannot start now is
            // asked for again by the next check.
            if let Err(e) = self.add_workers(myself, target - total).await {
                tracing::error!(error = %e, "could not start more workers");
            }
            self.args.freed.notify_one();
            (self.workers.len().saturating_sub(total), "up")
        } else {
            (self.retire_workers(total - target), "down")
        };
        if changed == 0 {
            return;
        }
        self.metric(MetricsMsg::Scaled(direction));
        tracing::info!(
            from = total,
            to = self.workers.len(),
            busy,
            backlog,
            changed,
            "worker pool resized"
        );
        self.publish_workers();
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
