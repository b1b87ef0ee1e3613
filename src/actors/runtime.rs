//! RuntimeActor: one per language. It owns the language's image and hands out cells: a ready
//! one from its pool when the job fits the pool's shape, else one made for the job. Docker calls
//! run in spawned tasks so that one slow create never holds up the next request.
//!
//! The pool holds cells of the language's default shape (memory, pids, CPU), started, their
//! executor waiting for a job. A worker gives its cell back when the job is done; the cell
//! returns to the pool until it has served `docker.cell_max_jobs` jobs (one, for the
//! `container` backend and under gVisor), broke, or is surplus. The pool refills as it is used;
//! a job that finds it empty raises its size (up to max), and a quiet spell
//! (`pool.shrink_after_secs`) lowers it again, one step at a time (down to min). A job of
//! another shape (say, more memory) gets a cell of its own, removed after it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::metrics::MetricsMsg;
use super::{names, WorkerContext};
use crate::config::PoolRange;
use crate::languages::Language;
use crate::model::{ExecuteRequest, Job};
use crate::sandbox::container::Owner;
use crate::sandbox::{Cell, Sandbox, SandboxError, Shape};

/// Longest time between two looks at whether the pool may shrink.
const SHRINK_CHECK: Duration = Duration::from_secs(10);

pub enum RuntimeMsg {
    /// A cell for this job.
    Acquire(Box<Job>, RpcReplyPort<Result<Cell, SandboxError>>),
    /// A worker is done with its cell.
    Release(Box<Cell>),
    /// The Supervisor's health check.
    Ping(RpcReplyPort<()>),
    /// Ids of the cells the pool holds or is starting.
    Pooled(RpcReplyPort<Vec<String>>),
    /// A pool cell was created and is being started.
    Warming(String),
    /// A pool cell is ready, or could not be made (with its id if it was created).
    Warmed(Option<String>, Result<Cell, SandboxError>),
    /// Time to see whether the pool may shrink.
    Shrink,
}

pub struct RuntimeActor;

pub struct RuntimeState {
    ctx: Arc<WorkerContext>,
    language: Language,
    pool: Pool,
}

struct Pool {
    /// What a pooled cell is made of; a job fits when its own cell would be the same.
    shape: Shape,
    /// Jobs a pooled cell serves before it is replaced.
    jobs_per_cell: u32,
    range: PoolRange,
    /// Time without an empty-pool miss before the pool steps down.
    quiet: Duration,
    target: usize,
    ready: VecDeque<Cell>,
    /// Created, being attached and started.
    warming: HashSet<String>,
    /// Warm-ups asked for and not yet back.
    in_flight: usize,
    /// Pooled cells out with workers that will come back (cells that serve one job do not).
    lent: usize,
    /// Jobs that fit but found the pool empty: each takes the next cell warmed or given back,
    /// which is no later than one created for it now, and no Docker work is done twice.
    waiting: VecDeque<(Box<Job>, Reply)>,
    last_miss: Instant,
}

type Reply = RpcReplyPort<Result<Cell, SandboxError>>;

impl Actor for RuntimeActor {
    type Msg = RuntimeMsg;
    type State = RuntimeState;
    type Arguments = (Arc<WorkerContext>, Language);

    async fn pre_start(
        &self,
        myself: ActorRef<RuntimeMsg>,
        (ctx, language): Self::Arguments,
    ) -> Result<RuntimeState, ActorProcessingErr> {
        // No Docker call here: the Supervisor waits for this, and must never wait on Docker.
        // (The node looks for the images; a pool waits for its image: see `refill`.)
        let config = &ctx.node.config;
        // The job a request naming nothing but the language becomes: the pool's shape.
        let typical = ExecuteRequest::new(&language.name, "-")
            .validate(&ctx.node.languages, &config.limits)?;
        let range = config.pool.range(&language.name);
        let pool = Pool {
            shape: ctx.sandbox.shape(&typical),
            jobs_per_cell: ctx.sandbox.jobs_per_cell(&typical),
            range,
            quiet: Duration::from_secs(config.pool.shrink_after_secs),
            target: range.min,
            ready: VecDeque::new(),
            warming: HashSet::new(),
            in_flight: 0,
            lent: 0,
            waiting: VecDeque::new(),
            last_miss: Instant::now(),
        };
        let check = SHRINK_CHECK.min(pool.quiet).max(Duration::from_millis(100));
        myself.send_interval(check, || RuntimeMsg::Shrink);
        let mut state = RuntimeState {
            ctx,
            language,
            pool,
        };
        state.refill(&myself);
        state.report();
        Ok(state)
    }

    async fn post_stop(
        &self,
        _: ActorRef<RuntimeMsg>,
        state: &mut RuntimeState,
    ) -> Result<(), ActorProcessingErr> {
        for id in state.pool.ids() {
            state.ctx.sandbox.remove_later(id);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RuntimeMsg>,
        msg: RuntimeMsg,
        state: &mut RuntimeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RuntimeMsg::Ping(reply) => drop(reply.send(())),
            RuntimeMsg::Pooled(reply) => drop(reply.send(state.pool.ids())),
            RuntimeMsg::Warming(id) => drop(state.pool.warming.insert(id)),
            RuntimeMsg::Acquire(job, reply) => {
                if !state.fits(&job) {
                    state.create_cold(job, reply);
                    return Ok(());
                }
                match state.take_warm() {
                    Some(warm) => state.lend(warm, reply),
                    None => state.pool.waiting.push_back((job, reply)),
                }
                state.refill(&myself);
                state.report();
            }
            RuntimeMsg::Release(cell) => {
                state.release(*cell);
                state.refill(&myself);
                state.report();
            }
            RuntimeMsg::Warmed(id, warmed) => {
                state.pool.in_flight -= 1;
                if let Some(id) = id {
                    state.pool.warming.remove(&id);
                }
                let waiter = state.pool.waiting.pop_front();
                match (warmed, waiter) {
                    (Ok(warm), Some((_, reply))) => state.lend(warm, reply),
                    (Ok(warm), None) => state.pool.ready.push_back(warm),
                    (Err(e), waiter) => {
                        tracing::warn!(language = %state.language.name, error = %e, "could not start a pool cell");
                        if let Some((job, reply)) = waiter {
                            state.create_cold(job, reply);
                        }
                    }
                }
                state.refill(&myself);
                state.report();
            }
            RuntimeMsg::Shrink => {
                state.shrink();
                // A pool whose image was still being built when the node started fills now.
                state.refill(&myself);
                state.report();
            }
        }
        Ok(())
    }
}

impl RuntimeState {
    /// Whether a pooled cell is the one this job needs.
    fn fits(&self, job: &Job) -> bool {
        self.pool.range.max > 0 && self.ctx.sandbox.shape(job) == self.pool.shape
    }

    /// Hands a pooled cell to a worker, counting it as coming back if it can serve again.
    fn lend(&mut self, cell: Cell, reply: Reply) {
        if self.pool.jobs_per_cell > 1 {
            self.pool.lent += 1;
        }
        hand_over(&self.ctx.sandbox, cell, reply);
    }

    /// A cell a worker gave back: to a waiting job, back to the pool (surplus goes when the
    /// pool shrinks), or removed when spent, broken or of another shape.
    fn release(&mut self, mut cell: Cell) {
        let pooled = cell.shape == self.pool.shape && self.pool.jobs_per_cell > 1;
        if pooled {
            self.pool.lent = self.pool.lent.saturating_sub(1);
        }
        if !pooled || cell.spent() || !cell.alive() {
            self.ctx.sandbox.remove_later(cell.id);
            return;
        }
        match self.pool.waiting.pop_front() {
            Some((_, reply)) => self.lend(cell, reply),
            None => self.pool.ready.push_back(cell),
        }
    }

    /// A live pooled cell, if one is ready. An empty pool raises its target.
    fn take_warm(&mut self) -> Option<Cell> {
        let pool = &mut self.pool;
        while let Some(mut warm) = pool.ready.pop_front() {
            if warm.alive() {
                return Some(warm);
            }
            tracing::warn!(cell = %warm.id, "a pool cell died while it waited; discarding it");
            self.ctx.sandbox.remove_later(warm.id);
        }
        pool.target = (pool.target + 1).min(pool.range.max);
        pool.last_miss = Instant::now();
        None
    }

    /// A cell made for this one job (for each of its steps, where a cell may serve several),
    /// removed after it.
    fn create_cold(&self, job: Box<Job>, reply: Reply) {
        let sandbox = self.ctx.sandbox.clone();
        tokio::spawn(async move {
            let id = job.id().to_string();
            let steps = sandbox.jobs_per_cell(&job).min(job.steps());
            match sandbox
                .cell(sandbox.shape(&job), Owner::Execution(&id), steps, |_| {})
                .await
            {
                Ok(cell) => hand_over(&sandbox, cell, reply),
                Err(e) => drop(reply.send(Err(e))),
            }
        });
    }

    /// Starts warm-ups until ready + starting + lent reaches the target, plus one for each
    /// job waiting.
    fn refill(&mut self, myself: &ActorRef<RuntimeMsg>) {
        if !self.ctx.installed.has(&self.language.name) {
            return;
        }
        let pool = &mut self.pool;
        while pool.ready.len() + pool.in_flight + pool.lent < pool.target + pool.waiting.len() {
            pool.in_flight += 1;
            let (sandbox, shape, myself) =
                (self.ctx.sandbox.clone(), pool.shape.clone(), myself.clone());
            let (language, jobs) = (self.language.name.clone(), pool.jobs_per_cell);
            self.ctx.warmups.spawn(async move {
                let mut created = None;
                let warmed = sandbox
                    .cell(shape, Owner::Pool(&language), jobs, |id| {
                        created = Some(id.to_string());
                        drop(myself.cast(RuntimeMsg::Warming(id.to_string())))
                    })
                    .await;
                let _ = myself.cast(RuntimeMsg::Warmed(created, warmed));
            });
        }
    }

    /// After a quiet spell, one step down towards min; surplus ready cells go.
    fn shrink(&mut self) {
        let pool = &mut self.pool;
        if pool.target > pool.range.min && pool.last_miss.elapsed() >= pool.quiet {
            pool.target -= 1;
            pool.last_miss = Instant::now();
        }
        while pool.ready.len() > pool.target {
            if let Some(warm) = pool.ready.pop_back() {
                self.ctx.sandbox.remove_later(warm.id);
            }
        }
    }

    fn report(&self) {
        if let Some(metrics) = super::lookup::<MetricsMsg>(&names::metrics(self.ctx.node.node_id()))
        {
            let _ = metrics.cast(MetricsMsg::PoolSize {
                language: self.language.name.clone(),
                size: self.pool.ready.len(),
            });
        }
    }
}

impl Pool {
    fn ids(&self) -> Vec<String> {
        self.ready
            .iter()
            .map(|w| w.id.clone())
            .chain(self.warming.iter().cloned())
            .collect()
    }
}

/// Gives the cell to the worker that asked. That worker may be gone: then its cell must not
/// outlive it.
fn hand_over(sandbox: &Sandbox, cell: Cell, reply: Reply) {
    if let Err(ractor::MessagingErr::SendErr(Ok(cell))) = reply.send(Ok(cell)) {
        sandbox.remove_later(cell.id);
    }
}
