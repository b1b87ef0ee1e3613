//! RuntimeActor: one per language. It owns the language's image and hands out containers: a
//! warm one from its pool when one fits the job, else a fresh one. Docker calls run in spawned
//! tasks so that one slow create never holds up the next request.
//!
//! The pool holds containers created with the language's default limits, attached and
//! started, their bootstrap waiting on stdin. Each serves one job and is then removed. The pool
//! refills as it is used; a job that finds it empty raises its size (up to max), and a quiet
//! spell (`pool.shrink_after_secs`) lowers it again, one step at a time (down to min). A job whose container would differ from the pool's
//! (other limits, arguments) gets a container of its own.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::metrics::MetricsMsg;
use super::{names, WorkerContext};
use crate::config::PoolRange;
use crate::languages::Language;
use crate::model::{ExecuteRequest, Job};
use crate::sandbox::{Attached, Container, Sandbox, SandboxError};

/// Longest time between two looks at whether the pool may shrink.
const SHRINK_CHECK: Duration = Duration::from_secs(10);

pub enum RuntimeMsg {
    /// A container for this job.
    Acquire(Box<Job>, RpcReplyPort<Result<Container, SandboxError>>),
    /// The Supervisor's health check.
    Ping(RpcReplyPort<()>),
    /// Ids of the containers the pool holds or is starting.
    Pooled(RpcReplyPort<Vec<String>>),
    /// A pool container was created and is being started.
    Warming(String),
    /// A pool container is ready, or could not be made (with its id if it was created).
    Warmed(Option<String>, Result<Attached, SandboxError>),
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
    /// What a pooled container looks like; a job fits when its own container would be equal.
    body: ContainerCreateBody,
    range: PoolRange,
    /// Time without an empty-pool miss before the pool steps down.
    quiet: Duration,
    target: usize,
    ready: VecDeque<Attached>,
    /// Created, being attached and started.
    warming: HashSet<String>,
    /// Warm-ups asked for and not yet back.
    in_flight: usize,
    /// Jobs that fit but found the pool empty: each takes the next container warmed, which
    /// is no later than one created for it now, and no Docker work is done twice.
    waiting: VecDeque<(Box<Job>, Reply)>,
    last_miss: Instant,
}

type Reply = RpcReplyPort<Result<Container, SandboxError>>;

impl Actor for RuntimeActor {
    type Msg = RuntimeMsg;
    type State = RuntimeState;
    type Arguments = (Arc<WorkerContext>, Language);

    async fn pre_start(
        &self,
        myself: ActorRef<RuntimeMsg>,
        (ctx, language): Self::Arguments,
    ) -> Result<RuntimeState, ActorProcessingErr> {
        // A missing image is a setup problem: fail loudly at start, not on the first job.
        ctx.sandbox.check_image(&language.image).await?;
        let config = &ctx.node.config;
        // The job a request naming nothing but the language becomes: the pool's shape.
        let typical = ExecuteRequest::new(&language.name, "-")
            .validate(&ctx.node.languages, &config.limits)?;
        let range = config.pool.range(&language.name);
        let pool = Pool {
            body: ctx.sandbox.body(&typical, None),
            range,
            quiet: Duration::from_secs(config.pool.shrink_after_secs),
            target: range.min,
            ready: VecDeque::new(),
            warming: HashSet::new(),
            in_flight: 0,
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
                    Some(warm) => hand_over(&state.ctx.sandbox, Container::Warm(warm), reply),
                    None => state.pool.waiting.push_back((job, reply)),
                }
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
                    (Ok(warm), Some((_, reply))) => {
                        hand_over(&state.ctx.sandbox, Container::Warm(warm), reply)
                    }
                    (Ok(warm), None) => state.pool.ready.push_back(warm),
                    (Err(e), waiter) => {
                        tracing::warn!(language = %state.language.name, error = %e, "could not start a pool container");
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
                state.report();
            }
        }
        Ok(())
    }
}

impl RuntimeState {
    /// Whether a pooled container is the one this job needs.
    fn fits(&self, job: &Job) -> bool {
        self.pool.range.max > 0 && self.ctx.sandbox.body(job, None) == self.pool.body
    }

    /// A live pooled container, if one is ready. An empty pool raises its target.
    fn take_warm(&mut self) -> Option<Attached> {
        let pool = &mut self.pool;
        while let Some(mut warm) = pool.ready.pop_front() {
            if warm.alive() {
                return Some(warm);
            }
            tracing::warn!(container = %warm.id, "a pool container died while it waited; discarding it");
            self.ctx.sandbox.remove_later(warm.id);
        }
        pool.target = (pool.target + 1).min(pool.range.max);
        pool.last_miss = Instant::now();
        None
    }

    fn create_cold(&self, job: Box<Job>, reply: Reply) {
        let sandbox = self.ctx.sandbox.clone();
        tokio::spawn(async move {
            match sandbox.create(&job).await {
                Ok(id) => hand_over(&sandbox, Container::Cold(id), reply),
                Err(e) => drop(reply.send(Err(e))),
            }
        });
    }

    /// Starts warm-ups until ready + starting reaches the target, plus one for each job
    /// waiting.
    fn refill(&mut self, myself: &ActorRef<RuntimeMsg>) {
        let pool = &mut self.pool;
        while pool.ready.len() + pool.in_flight < pool.target + pool.waiting.len() {
            pool.in_flight += 1;
            let (sandbox, body, myself) =
                (self.ctx.sandbox.clone(), pool.body.clone(), myself.clone());
            tokio::spawn(async move {
                let mut created = None;
                let warmed = sandbox
                    .warm(body, |id| {
                        created = Some(id.to_string());
                        drop(myself.cast(RuntimeMsg::Warming(id.to_string())))
                    })
                    .await;
                let _ = myself.cast(RuntimeMsg::Warmed(created, warmed));
            });
        }
    }

    /// After a quiet spell, one step down towards min; surplus ready containers go.
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

/// Gives the container to the worker that asked. That worker may be gone: then its container
/// must not outlive it.
fn hand_over(
    sandbox: &Sandbox,
    container: Container,
    reply: RpcReplyPort<Result<Container, SandboxError>>,
) {
    if let Err(ractor::MessagingErr::SendErr(Ok(container))) = reply.send(Ok(container)) {
        sandbox.remove_later(container.id().to_string());
    }
}
