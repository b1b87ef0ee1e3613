//! The application layer: what a client can do, whichever API it speaks. REST, NATS
//! request/reply and every later adapter (Judge0, Piston, MCP) call [`Executions`] and
//! nothing below it, so that the job flow exists once:
//!
//! adapter (parse, answer) → [`Executions`] (validate, enqueue, wait) → queue (stream, records)
//! → a worker's actors → sandbox.
//!
//! - [`batch`]: many executions submitted, waited for and read as one.
//! - [`error`]: what can go wrong, and the one table mapping it to HTTP and NATS answers.
//! - [`request_id`]: the id that follows a request everywhere.
//! - [`served`]: whether some worker runs a language now (has its image).

pub mod batch;
pub mod error;
pub mod request_id;
mod served;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

pub use error::{AppError, ErrorBody, Thing};
pub use request_id::RequestId;

use crate::actors::NodeContext;
use crate::config::Config;
use crate::languages::{LanguageInfo, Languages};
use crate::live::{Event, Input};
use crate::model::{
    Callback, CallbackState, ExecuteRequest, ExecutionRecord, ExecutionSummary, Job, Priority,
    ValidationError,
};
use crate::queue::callbacks::Target;
use crate::queue::live;
use crate::queue::nodes::{self, NodeEntry};
use crate::queue::Cancelled;
use crate::webhooks;

/// How long a synchronous request may wait for a free worker, on top of its own timeout.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(60);
/// How long a cancel waits for the node running the job to confirm.
const CANCEL_PATIENCE: Duration = Duration::from_secs(10);

/// The one service behind every API. Cheap to clone.
#[derive(Clone)]
pub struct Executions {
    ctx: Arc<NodeContext>,
    served: Arc<served::Served>,
}

impl Executions {
    pub fn new(ctx: Arc<NodeContext>) -> Executions {
        Executions {
            ctx,
            served: Default::default(),
        }
    }

    /// Validates and enqueues a request; returns the record as queued (or as it already
    /// stands, for a repeated execution id).
    pub async fn submit(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        let job = self.validate(request)?;
        self.enqueue(&job, request_id).await
    }

    /// Enqueues and waits for the final record. When the wait runs out, the record as it
    /// stands (queued or running) comes back instead, and the client can poll for the rest.
    pub async fn run(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        let job = self.validate(request)?;
        let queued = self.enqueue(&job, request_id).await?;
        self.wait(&job, queued).await
    }

    /// Waits for `queued` (the record of `job` as enqueued) to end, within the job's budget.
    async fn wait(&self, job: &Job, queued: ExecutionRecord) -> Result<ExecutionRecord, AppError> {
        if queued.status.is_final() {
            return Ok(queued);
        }
        let wait = job.time_budget() + QUEUE_ALLOWANCE;
        let latest = self.ctx.queue.waiters.wait_final(&job.id(), wait).await?;
        self.with_callback(latest.unwrap_or(queued)).await
    }

    fn validate(&self, request: ExecuteRequest) -> Result<Job, AppError> {
        self.check_callback(request.callback_url.as_deref())?;
        Ok(request.validate(&self.ctx.languages, &self.ctx.config.limits)?)
    }

    /// A `callback_url` the webhook policy allows, or none.
    fn check_callback(&self, url: Option<&str>) -> Result<(), ValidationError> {
        let Some(url) = url else { return Ok(()) };
        match webhooks::policy::check_url(&self.ctx.config.webhooks, url) {
            Ok(_) => Ok(()),
            Err(message) => Err(ValidationError::Invalid {
                field: "callback_url",
                message,
            }),
        }
    }

    /// The record with its webhook delivery's state, when it named a `callback_url`.
    async fn with_callback(
        &self,
        mut record: ExecutionRecord,
    ) -> Result<ExecutionRecord, AppError> {
        if record.callback_url.is_some() {
            let target = Target::Execution(record.execution_id);
            record.callback = Some(self.callback(target).await?);
        }
        Ok(record)
    }

    /// How a delivery stands; not yet tried when nothing is stored.
    async fn callback(&self, target: Target) -> Result<Callback, AppError> {
        let stored = self.ctx.queue.callbacks.get(target).await?;
        Ok(stored.map_or_else(
            || Callback::new(CallbackState::Pending, 0, None),
            |s| s.callback,
        ))
    }

    async fn enqueue(
        &self,
        job: &Job,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, AppError> {
        tracing::Span::current().record("execution_id", tracing::field::display(job.id()));
        self.check_served(job).await?;
        let record = self.ctx.queue.submit(job, request_id.as_str()).await?;
        tracing::info!(language = %job.language.name, "job queued");
        Ok(record)
    }

    /// Refuses a job no worker can run now: its language's image is built nowhere yet.
    async fn check_served(&self, job: &Job) -> Result<(), AppError> {
        self.served
            .check(&self.ctx.queue.nodes, &job.language)
            .await
    }

    pub async fn get(&self, id: &str) -> Result<ExecutionRecord, AppError> {
        let id = parse_id(id, Thing::Execution)?;
        match self.ctx.queue.records.get(&id).await? {
            Some(found) => self.with_callback(found.record).await,
            None => Err(AppError::NotFound {
                what: Thing::Execution,
                id,
            }),
        }
    }

    /// The execution's events from now on: its status as it stands, what the worker publishes
    /// while it runs, and last its final record (at once, for one already final), after which
    /// the stream ends. It ends early when the caller drops it.
    pub async fn events(
        &self,
        id: &str,
    ) -> Result<impl futures::Stream<Item = Event> + Send + 'static, AppError> {
        let id = parse_id(id, Thing::Execution)?;
        // Heard before the record is read, so that nothing falls between the two.
        let events = live::events(&self.ctx.queue.client, &id).await?;
        let record = self.get(&id.to_string()).await?;
        Ok(followed(self.ctx.queue.clone(), record, events))
    }

    /// Submits `request` as an interactive job: its stdin stays open for [`Self::send_input`]
    /// until an `Input::Eof`. Returns the record as queued, and its events as [`Self::events`]
    /// gives them, heard before the job was queued so that none is missed.
    pub async fn submit_interactive(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<
        (
            ExecutionRecord,
            impl futures::Stream<Item = Event> + Send + 'static,
        ),
        AppError,
    > {
        let mut job = self.validate(request)?;
        if !job.submission.tests.is_empty() {
            return Err(ValidationError::Invalid {
                field: "tests",
                message: "an interactive execution takes no test cases: send them to \
                          POST /execute"
                    .into(),
            }
            .into());
        }
        job.submission.interactive = true;
        let events = live::events(&self.ctx.queue.client, &job.id()).await?;
        let record = self.enqueue(&job, request_id).await?;
        let events = followed(self.ctx.queue.clone(), record.clone(), events);
        Ok((record, events))
    }

    /// Passes input to a running interactive job (at most once, like every live message: a
    /// job not yet running does not hear it, so send after its `running` event).
    pub async fn send_input(&self, id: &Uuid, input: &Input) -> Result<(), AppError> {
        Ok(live::send_input(&self.ctx.queue.client, id, input).await?)
    }

    /// Cancels; the answer says whether the job is now cancelled, or was already finished.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled, AppError> {
        let id = parse_id(id, Thing::Execution)?;
        self.ctx
            .queue
            .cancel(&id, CANCEL_PATIENCE)
            .await?
            .ok_or(AppError::NotFound {
                what: Thing::Execution,
                id,
            })
    }

    /// The nodes alive in the cluster.
    pub async fn cluster(&self) -> Result<Vec<NodeEntry>, AppError> {
        Ok(nodes::list(&self.ctx.queue.nodes).await?)
    }

    /// What can run here, and under which limits.
    pub fn languages(&self) -> Vec<LanguageInfo> {
        self.ctx.languages.catalogue(&self.ctx.config.limits)
    }

    /// The language definitions themselves, for adapters that name languages their own way.
    pub fn language_table(&self) -> &Languages {
        &self.ctx.languages
    }

    /// The node's configuration (its bounds, webhooks), for adapters that report it.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Jobs waiting in the stream, by priority.
    pub async fn backlog(&self) -> Result<Vec<(Priority, u64)>, AppError> {
        Ok(self.ctx.queue.pending().await?)
    }

    /// The newest executions in the cluster, newest first, at most `limit`.
    pub async fn recent(&self, limit: usize) -> Result<Vec<ExecutionSummary>, AppError> {
        // An execution's record is written about three times (queued, running, final), and
        // only its last write stays: a window of four writes per execution asked for.
        let records = self.ctx.queue.records.recent(limit as u64 * 4).await?;
        Ok(records
            .iter()
            .take(limit)
            .map(ExecutionSummary::from)
            .collect())
    }
}

/// `record`'s status, then the live `events` until the record is final, then the record.
fn followed(
    queue: crate::queue::Queue,
    record: ExecutionRecord,
    events: impl futures::Stream<Item = Event> + Unpin + Send + 'static,
) -> impl futures::Stream<Item = Event> + Send + 'static {
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    let _ = send.send(Event::Status(record.status));
    match record.status.is_final() {
        true => drop(send.send(Event::Final(Box::new(record)))),
        false => drop(tokio::spawn(follow(
            queue,
            record.execution_id,
            events,
            send,
        ))),
    }
    futures::stream::unfold(receive, |mut receive| async {
        receive.recv().await.map(|event| (event, receive))
    })
}

/// Passes a running execution's events on until its record is final, then the record.
async fn follow(
    queue: crate::queue::Queue,
    id: Uuid,
    mut events: impl futures::Stream<Item = Event> + Unpin + Send,
    send: tokio::sync::mpsc::UnboundedSender<Event>,
) {
    use futures::{FutureExt, StreamExt};
    let final_record = async {
        loop {
            match queue.waiters.wait_final(&id, FOLLOW_PATIENCE).await {
                Ok(Some(record)) if record.status.is_final() => break record,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(execution_id = %id, error = %e, "waiting for the final record");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    };
    tokio::pin!(final_record);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => if send.send(event).is_err() { return },
                None => return,
            },
            record = &mut final_record => {
                // Events already here were published before the record was written.
                while let Some(Some(event)) = events.next().now_or_never() {
                    let _ = send.send(event);
                }
                let _ = send.send(Event::Final(Box::new(record)));
                return;
            }
            _ = send.closed() => return,
        }
    }
}

/// How long one wait for a followed execution's final record lasts before it is renewed.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(60);

fn parse_id(id: &str, what: Thing) -> Result<Uuid, AppError> {
    Uuid::parse_str(id).map_err(|_| AppError::BadId {
        what,
        given: id.to_string(),
    })
}
