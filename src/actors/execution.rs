//! One job's run on this node, once its worker holds the claim: a cell leased from the
//! language's RuntimeActor for the job's steps, then either the job in one step, or, for a
//! job with test cases, the compile step once and the program once per case, each case in
//! fresh namespaces (a cell that serves many jobs) or a fresh cell (one that serves one).
//! Its live events go out on core NATS as they come, and an interactive job's input comes
//! in the same way ([`crate::queue::live`]).

use futures::FutureExt;
use ractor::ActorRef;
use tokio::sync::{mpsc, oneshot};

use super::runtime::RuntimeMsg;
use super::{lookup, names, Stop, WorkerContext};
use crate::judge::{self, TestResult};
use crate::live::Event;
use crate::model::{ExecutionRecord, Job, Status};
use crate::queue::live;
use crate::sandbox::execute::{Outcome, Step, Tap};
use crate::sandbox::Cell;

/// How long a container create may take before the job is failed.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the job; None: it was stopped to be handed back.
pub async fn execute(
    ctx: &WorkerContext,
    job: &Job,
    running: ExecutionRecord,
    stop: oneshot::Receiver<Stop>,
) -> Option<ExecutionRecord> {
    let runtime_name = names::runtime(ctx.node.node_id(), &job.language.name);
    let Some(runtime) = lookup::<RuntimeMsg>(&runtime_name) else {
        return Some(running.failed("this node has no runtime for the language"));
    };
    let why = std::sync::OnceLock::new();
    // Shared: every step of the job listens to the one kill switch.
    let stopped = async {
        match stop.await {
            Ok(reason) => drop(why.set(reason)),
            // A dropped sender (job finished) must not count as a stop.
            Err(_) => std::future::pending::<()>().await,
        }
    }
    .shared();
    let (tap, publisher) = open_tap(ctx, job).await;
    let mut lease = Lease {
        ctx,
        runtime,
        cell: None,
        tap,
    };
    let record = match job.submission.tests.is_empty() {
        true => match lease.run(job, Step::Whole, stopped).await {
            Ok(outcome) => outcome.into_record(running),
            Err(e) => running.failed(e),
        },
        false => run_tests(&mut lease, job, running, stopped, &why).await,
    };
    drop(lease);
    publisher.finish().await;
    match why.get() {
        Some(Stop::HandBack) => None,
        _ => Some(record),
    }
}

/// How long the last events may take to go out before the final record is written.
const PUBLISH_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The tasks that carry a job's events out and its input in.
struct Publisher {
    events: tokio::task::JoinHandle<()>,
    input: Option<tokio::task::JoinHandle<()>>,
}

impl Publisher {
    /// Waits until every event is handed to NATS, so that watchers see all of the output
    /// before the final record (written after this, on the same connection).
    async fn finish(self) {
        if let Some(input) = self.input {
            input.abort();
        }
        let _ = tokio::time::timeout(PUBLISH_GRACE, self.events).await;
    }
}

/// The job's tap: `running` first, then its events, published in order; for an interactive
/// job, its input, heard before `running` goes out, so that a client who waits for `running`
/// before it sends loses nothing.
async fn open_tap(ctx: &WorkerContext, job: &Job) -> (Tap, Publisher) {
    let client = ctx.node.queue.client.clone();
    let id = job.id();
    let input = match job.submission.interactive {
        false => None,
        true => match live::input(&client, &id).await {
            Ok(mut stream) => {
                let (send, receive) = mpsc::unbounded_channel();
                let task = tokio::spawn(async move {
                    while let Some(input) = futures::StreamExt::next(&mut stream).await {
                        if send.send(input).is_err() {
                            break;
                        }
                    }
                });
                Some((receive, task))
            }
            Err(e) => {
                tracing::warn!(execution_id = %id, error = %e, "cannot hear the job's input");
                None
            }
        },
    };
    let (events, mut queued) = mpsc::unbounded_channel::<Event>();
    let _ = events.send(Event::Status(Status::Running));
    let publisher = tokio::spawn(async move {
        while let Some(event) = queued.recv().await {
            if let Err(e) = live::publish_event(&client, &id, &event).await {
                tracing::debug!(execution_id = %id, error = %e, "an event was not published");
            }
        }
    });
    let (input, input_task) = input.unzip();
    (
        Tap::new(Some(events), input),
        Publisher {
            events: publisher,
            input: input_task,
        },
    )
}

/// Compiles once (for compiled languages), then runs each case from the compiled work dir.
async fn run_tests(
    lease: &mut Lease<'_>,
    job: &Job,
    running: ExecutionRecord,
    stopped: impl std::future::Future<Output = ()> + Clone,
    why: &std::sync::OnceLock<Stop>,
) -> ExecutionRecord {
    let compiled = match job.language.compile {
        None => None,
        Some(_) => match lease.run(job, Step::Compile, stopped.clone()).await {
            Ok(mut outcome) => match outcome.work.take() {
                Some(work) => Some((work, outcome.compile_result())),
                // Did not compile (or could not): that ends the request, no case runs.
                None => return judge::unrun(outcome.into_record(running)),
            },
            Err(e) => return judge::unrun(running.failed(e)),
        },
    };
    let mut cases = Vec::with_capacity(job.submission.tests.len());
    for (index, case) in job.submission.tests.iter().enumerate() {
        if why.get().is_some() {
            break;
        }
        let step = compiled
            .as_ref()
            .map_or(Step::Whole, |(work, _)| Step::From(work));
        let run = match lease.run(&job.case(index), step, stopped.clone()).await {
            Ok(outcome) => outcome.into_record(running.clone()),
            Err(e) => running.clone().failed(e),
        };
        cases.push(TestResult::judge(run, case, job.submission.compare));
    }
    let cancelled = why.get() == Some(&Stop::Cancel);
    judge::summary(running, compiled.and_then(|(_, c)| c), cases, cancelled)
}

/// A worker's hold on a cell across the steps of one job. A cell that can serve no more
/// (spent, broken) goes back and the next step gets another; the last goes back on drop.
struct Lease<'a> {
    ctx: &'a WorkerContext,
    runtime: ActorRef<RuntimeMsg>,
    cell: Option<Cell>,
    /// Every step's events go to the job's one tap.
    tap: Tap,
}

impl Lease<'_> {
    async fn run(
        &mut self,
        job: &Job,
        step: Step<'_>,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<Outcome, String> {
        if self.cell.as_ref().is_some_and(Cell::spent) {
            self.give_back();
        }
        if self.cell.is_none() {
            self.cell = Some(acquire(&self.runtime, job).await?);
        }
        let cell = self.cell.as_mut().expect("a cell was just acquired");
        self.ctx.containers.insert(job.id(), cell.id.clone());
        let executed = self
            .ctx
            .sandbox
            .execute(cell, job, step, cancel, &mut self.tap)
            .await;
        self.ctx.containers.remove(&job.id());
        executed.map_err(|e| {
            tracing::error!(execution_id = %job.id(), error = %e, "execution failed");
            e.to_string()
        })
    }

    /// The cell goes back to its runtime, which keeps it for the next job or removes it.
    fn give_back(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        if let Err(ractor::MessagingErr::SendErr(RuntimeMsg::Release(cell))) =
            self.runtime.cast(RuntimeMsg::Release(Box::new(cell)))
        {
            self.ctx.sandbox.remove_later(cell.id);
        }
    }
}

/// A cell for `job` from its language's runtime (warm when one fits).
async fn acquire(runtime: &ActorRef<RuntimeMsg>, job: &Job) -> Result<Cell, String> {
    let acquired = runtime
        .call(
            |port| RuntimeMsg::Acquire(Box::new(job.clone()), port),
            Some(ACQUIRE_TIMEOUT),
        )
        .await;
    match acquired {
        Ok(ractor::rpc::CallResult::Success(Ok(cell))) => Ok(cell),
        Ok(ractor::rpc::CallResult::Success(Err(e))) => Err(e.to_string()),
        Ok(_) | Err(_) => Err("no cell could be had in time".into()),
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.give_back();
    }
}
