//! The REST adapter (warp). A request reads top to bottom: the accept loop looks it up in the
//! route table ([`routes`]), a handler parses it, the application layer ([`crate::app`]) does
//! the work, the handler answers. Health, readiness and metrics are the node's own.

mod console;
mod error;
mod guard;
pub mod judge0;
mod mcp;
mod observe;
pub mod openapi;
mod piston;
pub mod routes;
pub mod server;
mod session;
mod unread;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::actors::metrics::MetricsMsg;
use crate::actors::supervisor::{self, SupervisorMsg};
use crate::actors::{lookup, names, NodeContext};
use crate::app::{AppError, ErrorBody, Executions, RequestId};
use crate::languages::LanguageInfo;
use crate::model::{
    Backlog, BatchAccepted, BatchRecord, BatchRequest, ExecuteRequest, ExecutionRecord,
    ExecutionRef, ExecutionSummary, Priority, ValidationError,
};
use crate::queue::nodes::NodeEntry;
use crate::queue::Cancelled;
use routes::{plain, with_param, Route};

pub struct ApiState {
    pub ctx: Arc<NodeContext>,
    pub executions: Executions,
    pub supervisor: ActorRef<SupervisorMsg>,
}

type Routes = warp::filters::BoxedFilter<(Response,)>;

/// All routes. A worker-only node (`with_executions` false) serves health and metrics only.
pub fn routes(
    state: Arc<ApiState>,
    with_executions: bool,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let health = plain(Route::Health).and(with_state.clone()).then(health);
    let ready = plain(Route::Ready).and(with_state.clone()).then(ready);
    let metrics = plain(Route::Metrics).and(with_state.clone()).then(metrics);
    let mut all: Routes = health.or(ready).unify().or(metrics).unify().boxed();
    if with_executions {
        all = all.or(execution_routes(state.clone())).unify().boxed();
        all = all.or(docs_routes()).unify().boxed();
        all = all.or(console::routes()).unify().boxed();
    }
    let origins = &state.ctx.config.api.cors_origins;
    if !origins.is_empty() {
        let cors = warp::cors()
            .allow_origins(origins.iter().map(String::as_str))
            .allow_methods(["GET", "POST", "DELETE"])
            .allow_headers(["content-type", "authorization", "x-request-id"]);
        all = all.with(cors).map(Reply::into_response).boxed();
    }
    all.recover(error::recover).unify()
}

fn execution_routes(state: Arc<ApiState>) -> Routes {
    let max_body = state.ctx.config.limits.max_body_bytes.bytes();
    let keys = Arc::new(guard::Guard::new(&state.ctx.config.api));
    let judge0 = judge0::routes(keys.clone(), state.executions.clone(), max_body);
    let piston_guard = match state.ctx.config.piston.open {
        true => Arc::new(guard::Guard::open(&state.ctx.config.api)),
        false => keys.clone(),
    };
    let piston = piston::routes(piston_guard, state.executions.clone(), max_body);
    let mcp = mcp::routes(keys.clone(), state.executions.clone(), max_body);
    let guard = keys.filter();
    let with_app = warp::any().map(move || state.executions.clone());
    // Set by the server before any route runs (see `server`).
    let request_id = warp::ext::get::<RequestId>();
    let body = warp::body::content_length_limit(max_body).and(warp::body::bytes());
    let execute = plain(Route::Execute)
        .and(guard.clone())
        .and(body)
        .and(request_id)
        .and(with_app.clone())
        .then(execute);
    let execute_async = plain(Route::ExecuteAsync)
        .and(guard.clone())
        .and(body)
        .and(request_id)
        .and(with_app.clone())
        .then(execute_async);
    // Anything but an upgrade is answered 426 by the handler, not rejected by warp.
    let upgrade = warp::ws().map(Some).or(warp::any().map(|| None)).unify();
    let execute_ws = plain(Route::ExecuteWs)
        .and(guard.clone())
        .and(upgrade)
        .and(request_id)
        .and(with_app.clone())
        .map(move |ws, id, app| session::execute_ws(ws, id, app, max_body));
    let get = with_param(Route::Execution)
        .and(guard.clone())
        .and(with_app.clone())
        .then(get_execution);
    let events = with_param(Route::Events)
        .and(guard.clone())
        .and(with_app.clone())
        .then(execution_events);
    let cancel = with_param(Route::Cancel)
        .and(guard.clone())
        .and(with_app.clone())
        .then(cancel_execution);
    let batch = plain(Route::Batch)
        .and(guard.clone())
        .and(body)
        .and(request_id)
        .and(with_app.clone())
        .then(submit_batch);
    let batch_records = with_param(Route::BatchRecords)
        .and(guard.clone())
        .and(with_app.clone())
        .then(get_batch);
    let workers = plain(Route::Workers)
        .and(guard.clone())
        .and(with_app.clone())
        .then(workers);
    let recent = plain(Route::Executions)
        .and(guard.clone())
        .and(warp::query::<RecentQuery>())
        .and(with_app.clone())
        .then(recent_executions);
    let queue = plain(Route::Queue)
        .and(guard.clone())
        .and(with_app.clone())
        .then(queue);
    let languages = plain(Route::Languages)
        .and(guard)
        .and(with_app)
        .map(languages);
    execute
        .or(execute_async)
        .unify()
        .or(execute_ws)
        .unify()
        .or(get)
        .unify()
        .or(events)
        .unify()
        .or(cancel)
        .unify()
        .or(batch)
        .unify()
        .or(batch_records)
        .unify()
        .or(workers)
        .unify()
        .or(recent)
        .unify()
        .or(queue)
        .unify()
        .or(languages)
        .unify()
        .or(judge0)
        .unify()
        .or(piston)
        .unify()
        .or(mcp)
        .unify()
        .boxed()
}

/// The API's own description, unguarded like the API's shape always is.
fn docs_routes() -> Routes {
    let document = plain(Route::OpenApi).map(openapi::serve_document);
    let page = plain(Route::Docs).and_then(|| async { openapi::serve_docs(None) });
    let asset = with_param(Route::DocsAsset)
        .and_then(|name: String| async move { openapi::serve_docs(Some(name)) });
    document.or(page).unify().or(asset).unify().boxed()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|e| AppError::InvalidJson(e.to_string()))
}

fn reply(result: Result<Response, AppError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

/// A record: 200 once final, 202 while it is still queued or running.
fn record_response(record: &ExecutionRecord) -> Response {
    let status = if record.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    json_with(record, status)
}

#[utoipa::path(post, path = "/execute", tag = "executions", request_body = ExecuteRequest,
    responses(
        (status = 200, description = "The program ran (or was refused by a limit): its final record", body = ExecutionRecord),
        (status = 202, description = "Still queued or running when the wait ran out: poll `GET /execution/{id}`", body = ExecutionRecord),
    ))]
/// `POST /execute`: runs the code and answers with its record.
async fn execute(body: Bytes, id: RequestId, app: Executions) -> Response {
    reply(
        async {
            let record = app.run(parse(&body)?, &id).await?;
            Ok(record_response(&record))
        }
        .await,
    )
}

#[utoipa::path(post, path = "/execute/async", tag = "executions", request_body = ExecuteRequest,
    responses((status = 202, description = "Queued", body = ExecutionRef)))]
/// `POST /execute/async`: 202 with the execution id at once.
async fn execute_async(body: Bytes, id: RequestId, app: Executions) -> Response {
    reply(
        async {
            let record = app.submit(parse(&body)?, &id).await?;
            Ok(json_with(
                &ExecutionRef::from(&record),
                StatusCode::ACCEPTED,
            ))
        }
        .await,
    )
}

#[utoipa::path(get, path = "/execution/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id (a UUID)")),
    responses((status = 200, description = "The record as it stands", body = ExecutionRecord)))]
/// `GET /execution/{id}`.
async fn get_execution(id: String, app: Executions) -> Response {
    reply(
        app.get(&id)
            .await
            .map(|r| warp::reply::json(&r).into_response()),
    )
}

#[utoipa::path(get, path = "/execution/{id}/events", tag = "executions",
    params(("id" = String, Path, description = "The execution id (a UUID)")),
    responses((status = 200, description = "Server-Sent Events: `status`, `stdout` and `stderr` chunks, `usage` every 250 ms while it runs, then `final` with the record",
        content_type = "text/event-stream", body = SseEvent)))]
/// `GET /execution/{id}/events`: the execution live, as Server-Sent Events.
async fn execution_events(id: String, app: Executions) -> Response {
    use futures::StreamExt;
    reply(app.events(&id).await.map(|events| {
        let events = events.map(|event| {
            Ok::<_, Infallible>(
                warp::sse::Event::default()
                    .event(event.name())
                    .data(event.data().to_string()),
            )
        });
        warp::sse::reply(warp::sse::keep_alive().stream(events)).into_response()
    }))
}

#[utoipa::path(delete, path = "/execution/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution id (a UUID)")),
    responses(
        (status = 200, description = "Cancelled", body = ExecutionRecord),
        (status = 202, description = "The kill is under way", body = ExecutionRecord),
        (status = 409, description = "It had already finished", body = ErrorBody),
    ))]
/// `DELETE /execution/{id}`: 200 with the cancelled record, 202 while the kill is under way,
/// 409 when the job had already finished.
async fn cancel_execution(id: String, app: Executions) -> Response {
    reply(match app.cancel(&id).await {
        Ok(Cancelled::Done(record)) | Ok(Cancelled::Requested(record)) => {
            Ok(record_response(&record))
        }
        Ok(Cancelled::AlreadyFinished(record)) => Err(AppError::AlreadyFinished(Box::new(record))),
        Err(e) => Err(e),
    })
}

#[utoipa::path(post, path = "/batch", tag = "executions", request_body = BatchRequest,
    responses(
        (status = 200, description = "Asked to wait, and every execution is final: the records", body = BatchRecord),
        (status = 202, description = "Queued (or not all final when the wait ran out): poll `GET /batch/{id}`", body = BatchAccepted),
    ))]
/// `POST /batch`: queues every execution as its own job. One refused request refuses the
/// batch (its error names `executions[i]`), and nothing of it runs.
async fn submit_batch(body: Bytes, id: RequestId, app: Executions) -> Response {
    reply(
        async {
            let request: BatchRequest = parse(&body)?;
            let wait = request.wait;
            let batch = app.submit_batch(request, &id).await?;
            if wait && batch.executions.iter().all(|r| r.status.is_final()) {
                return Ok(json_with(&batch, StatusCode::OK));
            }
            let accepted = BatchAccepted {
                batch_id: batch.batch_id,
                executions: batch.executions.iter().map(ExecutionRef::from).collect(),
            };
            Ok(json_with(&accepted, StatusCode::ACCEPTED))
        }
        .await,
    )
}

#[utoipa::path(get, path = "/batch/{id}", tag = "executions",
    params(("id" = String, Path, description = "The batch id (a UUID)")),
    responses((status = 200, description = "Every execution's record as it stands", body = BatchRecord)))]
/// `GET /batch/{id}`.
async fn get_batch(id: String, app: Executions) -> Response {
    reply(
        app.get_batch(&id)
            .await
            .map(|batch| warp::reply::json(&batch).into_response()),
    )
}

fn json_with(body: &impl Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

#[utoipa::path(get, path = "/languages", tag = "executions",
    responses((status = 200, description = "The languages and their limits", body = Vec<LanguageInfo>)))]
/// `GET /languages`: what can run here, and under which limits.
fn languages(app: Executions) -> Response {
    warp::reply::json(&app.languages()).into_response()
}

/// One Server-Sent Event of `GET /execution/{id}/events`, as the document describes the
/// stream (warp's SSE reply writes them): its name, and its JSON as text.
struct SseEvent;

impl utoipa::PartialSchema for SseEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .property(
                "event",
                text("`status`, `stdout`, `stderr`, `usage` or `final`"),
            )
            .property(
                "data",
                text("the event's JSON: `{\"status\"}`, `{\"data\"}`, the usage, the record"),
            )
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for SseEvent {}

#[derive(Serialize, utoipa::ToSchema)]
struct Health<'a> {
    status: &'a str,
    node: &'a str,
    workers: usize,
    busy: usize,
    queued: usize,
    restarts: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Ready<'a> {
    status: &'a str,
    node: &'a str,
}

#[utoipa::path(get, path = "/health", tag = "node", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
/// `GET /health`: liveness. The node is alive when its Supervisor answers.
async fn health(state: Arc<ApiState>) -> Response {
    match supervisor::status(&state.supervisor).await {
        Some(s) => warp::reply::json(&Health {
            status: "ok",
            node: state.ctx.node_id(),
            workers: s.workers.len(),
            busy: s.busy,
            queued: s.queued,
            restarts: s.restarts,
        })
        .into_response(),
        _ => AppError::Unavailable("the node's supervisor does not answer".into()).into_response(),
    }
}

#[utoipa::path(get, path = "/ready", tag = "node", security(()),
    responses((status = 200, description = "Takes jobs", body = Ready)))]
/// `GET /ready`: readiness. Ready when the Supervisor answers, NATS is connected and, on a
/// node that runs jobs, Docker answers. A node that is not ready takes no jobs.
async fn ready(state: Arc<ApiState>) -> Response {
    use async_nats::connection::State;
    let not_ready = |why: String| AppError::NotReady(why).into_response();
    let Some(status) = supervisor::status(&state.supervisor).await else {
        return not_ready("the node's supervisor does not answer".into());
    };
    if state.ctx.queue.client.connection_state() != State::Connected {
        return not_ready("NATS is not connected".into());
    }
    if let Some(why) = status.not_ready {
        return not_ready(format!("Docker is unreachable ({why})"));
    }
    warp::reply::json(&Ready {
        status: "ready",
        node: state.ctx.node_id(),
    })
    .into_response()
}

#[utoipa::path(get, path = "/workers", tag = "node",
    responses((status = 200, description = "The nodes of the cluster, from their heartbeats", body = Vec<NodeEntry>)))]
/// `GET /workers`: the nodes of the cluster, from their heartbeats.
async fn workers(app: Executions) -> Response {
    reply(
        app.cluster()
            .await
            .map(|nodes| warp::reply::json(&nodes).into_response()),
    )
}

/// `GET /executions` takes `limit`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct RecentQuery {
    /// How many, newest first: 1 to 500 (default 50).
    limit: Option<usize>,
}

const MAX_RECENT: usize = 500;

#[utoipa::path(get, path = "/executions", tag = "executions", params(RecentQuery),
    responses(
        (status = 200, description = "The newest executions of the cluster, newest first, without their output", body = Vec<ExecutionSummary>),
        (status = 400, description = "The query string is not `limit=N`", body = ErrorBody),
        (status = 422, description = "`limit` is outside 1 to 500", body = ErrorBody),
    ))]
/// `GET /executions`: the newest executions of the cluster (the console's live view).
async fn recent_executions(query: RecentQuery, app: Executions) -> Response {
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_RECENT).contains(&limit) {
        let message = format!("limit must be between 1 and {MAX_RECENT}; got {limit}");
        let invalid = ValidationError::Invalid {
            field: "limit",
            message,
        };
        return AppError::from(invalid).into_response();
    }
    reply(
        app.recent(limit)
            .await
            .map(|rows| warp::reply::json(&rows).into_response()),
    )
}

#[utoipa::path(get, path = "/queue", tag = "node",
    responses((status = 200, description = "Jobs waiting in the stream, by priority", body = Backlog)))]
/// `GET /queue`: jobs waiting in the stream, by priority.
async fn queue(app: Executions) -> Response {
    reply(app.backlog().await.map(|pending| {
        let of = |p: Priority| pending.iter().find(|(q, _)| *q == p).map_or(0, |(_, n)| *n);
        let backlog = Backlog {
            high: of(Priority::High),
            normal: of(Priority::Normal),
            low: of(Priority::Low),
        };
        warp::reply::json(&backlog).into_response()
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "node", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
/// `GET /metrics`: Prometheus text format.
async fn metrics(state: Arc<ApiState>) -> Response {
    let rendered = match lookup::<MetricsMsg>(&names::metrics(state.ctx.node_id())) {
        Some(actor) => {
            actor
                .call(MetricsMsg::Render, Some(Duration::from_secs(2)))
                .await
        }
        None => return AppError::Unavailable("metrics are restarting".into()).into_response(),
    };
    match rendered {
        Ok(CallResult::Success(text)) => warp::reply::with_header(
            warp::reply::with_status(text, StatusCode::OK),
            "content-type",
            "text/plain; version=0.0.4",
        )
        .into_response(),
        _ => AppError::Unavailable("metrics do not answer".into()).into_response(),
    }
}
