//! REST API (warp). A request reads top to bottom: parse, validate, hand to the Supervisor,
//! wait for the record, reply.

mod error;

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

pub use error::ApiError;

use crate::actors::metrics::MetricsMsg;
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::{lookup, names, NodeContext};
use crate::model::{ExecuteRequest, ExecutionRecord};
use crate::sandbox::limits::ByteSize;

/// How long a synchronous request may wait for a free worker, on top of its own timeout.
const QUEUE_ALLOWANCE: Duration = Duration::from_secs(60);

pub struct ApiState {
    pub ctx: Arc<NodeContext>,
    pub supervisor: ActorRef<SupervisorMsg>,
}

pub fn routes(
    state: Arc<ApiState>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone + Send + Sync + 'static {
    let max_body = state.ctx.config.limits.max_body_bytes.bytes();
    let with_state = warp::any().map(move || state.clone());
    let execute = warp::path!("execute")
        .and(warp::post())
        .and(warp::body::content_length_limit(max_body))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(execute);
    let languages = warp::path!("languages")
        .and(warp::get())
        .and(with_state.clone())
        .map(languages);
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .then(health);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state)
        .then(metrics);
    execute
        .or(languages)
        .unify()
        .or(health)
        .unify()
        .or(metrics)
        .unify()
        .recover(error::recover)
        .unify()
        .with(warp::log::custom(|info| {
            tracing::info!(
                method = %info.method(),
                path = info.path(),
                status = info.status().as_u16(),
                elapsed_ms = info.elapsed().as_secs_f64() * 1e3,
                "request"
            )
        }))
}

/// `POST /execute`: runs the code and answers with its record.
async fn execute(body: Bytes, state: Arc<ApiState>) -> Response {
    match run_sync(&body, &state).await {
        Ok(record) => warp::reply::json(&record).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn run_sync(body: &[u8], state: &ApiState) -> Result<ExecutionRecord, ApiError> {
    let request: ExecuteRequest =
        serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let ctx = &state.ctx;
    let job = request.validate(&ctx.languages, &ctx.config.limits)?;
    let wait = job.limits.timeout + QUEUE_ALLOWANCE;
    let submitted = job.clone();
    let answer = state
        .supervisor
        .call(
            |port| SupervisorMsg::Submit(Box::new(submitted), port),
            Some(wait),
        )
        .await
        .map_err(|_| ApiError::Unavailable("this node is shutting down".into()))?;
    Ok(match answer {
        CallResult::Success(record) => record,
        CallResult::Timeout => {
            ExecutionRecord::internal_error(&job, "no worker finished the job in time")
        }
        CallResult::SenderError => ExecutionRecord::internal_error(
            &job,
            "the worker running the job stopped before it finished",
        ),
    })
}

#[derive(Serialize)]
struct LanguageInfo<'a> {
    name: &'a str,
    aliases: &'a [String],
    version: &'a str,
    packages: &'a [String],
    limits: LimitInfo,
}

#[derive(Serialize)]
struct LimitInfo {
    timeout: f64,
    max_timeout: f64,
    memory_limit: ByteSize,
    max_memory_limit: ByteSize,
    output_bytes: ByteSize,
}

/// `GET /languages`: what can run here, and under which limits.
fn languages(state: Arc<ApiState>) -> Response {
    let l = &state.ctx.config.limits;
    let list: Vec<LanguageInfo> = state
        .ctx
        .languages
        .all()
        .iter()
        .map(|lang| LanguageInfo {
            name: &lang.name,
            aliases: &lang.aliases,
            version: &lang.version,
            packages: &lang.packages,
            limits: LimitInfo {
                timeout: l.default_timeout_secs,
                max_timeout: l.max_timeout_secs,
                memory_limit: l.default_memory,
                max_memory_limit: l.max_memory,
                output_bytes: l.output_bytes,
            },
        })
        .collect();
    warp::reply::json(&list).into_response()
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'a str,
    node: &'a str,
    workers: usize,
    busy: usize,
    queued: usize,
    restarts: u64,
}

/// `GET /health`: liveness. The node is alive when its Supervisor answers.
async fn health(state: Arc<ApiState>) -> Response {
    let status = state
        .supervisor
        .call(SupervisorMsg::Status, Some(Duration::from_secs(2)))
        .await;
    match status {
        Ok(CallResult::Success(s)) => warp::reply::json(&Health {
            status: "ok",
            node: state.ctx.node_id(),
            workers: s.workers.len(),
            busy: s.busy,
            queued: s.queued,
            restarts: s.restarts,
        })
        .into_response(),
        _ => ApiError::Unavailable("the node's supervisor does not answer".into()).into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(state: Arc<ApiState>) -> Response {
    let rendered = match lookup::<MetricsMsg>(&names::metrics(state.ctx.node_id())) {
        Some(actor) => {
            actor
                .call(MetricsMsg::Render, Some(Duration::from_secs(2)))
                .await
        }
        None => return ApiError::Unavailable("metrics are restarting".into()).into_response(),
    };
    match rendered {
        Ok(CallResult::Success(text)) => warp::reply::with_header(
            warp::reply::with_status(text, StatusCode::OK),
            "content-type",
            "text/plain; version=0.0.4",
        )
        .into_response(),
        _ => ApiError::Unavailable("metrics do not answer".into()).into_response(),
    }
}
