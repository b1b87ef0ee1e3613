//! Request/reply over NATS: `codebeaker.execute` and `codebeaker.languages`, in the queue group
//! `codebeaker` so that API nodes share the load. MessagePack (named fields) by default; a
//! request with the header `Content-Type: application/json` is read and answered in JSON.

use std::sync::Arc;

use async_nats::{HeaderMap, Message};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{names, records, QueueError};
use crate::actors::NodeContext;
use crate::api::{executions, ApiError, RequestId};
use crate::model::ExecuteRequest;

const JSON: &str = "application/json";

pub async fn start(
    ctx: Arc<NodeContext>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, QueueError> {
    let client = &ctx.queue.client;
    let subscribe =
        |subject: &'static str| client.queue_subscribe(subject, names::QUEUE_GROUP.to_string());
    let setup = |e: async_nats::SubscribeError| QueueError::Setup {
        what: "request/reply subscription",
        reason: e.to_string(),
    };
    let mut execute = subscribe(names::EXECUTE).await.map_err(setup)?;
    let mut languages = subscribe(names::LANGUAGES).await.map_err(setup)?;
    let mut workers = subscribe(names::WORKERS).await.map_err(setup)?;
    tracing::info!(
        "answering NATS requests on {}, {} and {}",
        names::EXECUTE,
        names::LANGUAGES,
        names::WORKERS
    );
    let in_flight = Arc::new(Semaphore::new(ctx.config.nats.max_requests_in_flight));
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(msg) = execute.next() => match in_flight.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let ctx = ctx.clone();
                        tokio::spawn(async move {
                            answer_execute(ctx, msg).await;
                            drop(permit);
                        });
                    }
                    Err(_) => respond(&ctx, &msg, &busy(&ctx).body()).await,
                },
                Some(msg) = languages.next() => {
                    let list = ctx.languages.catalogue(&ctx.config.limits);
                    respond(&ctx, &msg, &list).await;
                }
                Some(msg) = workers.next() => {
                    match executions::cluster(&ctx).await {
                        Ok(nodes) => respond(&ctx, &msg, &nodes).await,
                        Err(e) => respond(&ctx, &msg, &e.body()).await,
                    }
                }
                _ = stop.changed() => return,
                else => return,
            }
        }
    }))
}

async fn answer_execute(ctx: Arc<NodeContext>, msg: Message) {
    let request_id = RequestId::from_client(
        msg.headers
            .as_ref()
            .and_then(|h| h.get(names::REQUEST_ID_HEADER))
            .map(|v| v.as_str()),
    );
    let span = tracing::info_span!(
        "request",
        request_id = request_id.as_str(),
        subject = names::EXECUTE,
        execution_id = tracing::field::Empty
    );
    answer(ctx, msg, request_id).instrument(span).await
}

async fn answer(ctx: Arc<NodeContext>, msg: Message, request_id: RequestId) {
    let request: Result<ExecuteRequest, ApiError> = if wants_json(&msg) {
        serde_json::from_slice(&msg.payload).map_err(|e| ApiError::InvalidJson(e.to_string()))
    } else {
        records::decode(&msg.payload).map_err(|e| ApiError::InvalidJson(e.to_string()))
    };
    let outcome = match request {
        Ok(request) => executions::run(&ctx, request, &request_id).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(record) => respond(&ctx, &msg, &record).await,
        Err(e) => respond(&ctx, &msg, &e.body()).await,
    }
}

fn busy(ctx: &NodeContext) -> ApiError {
    ApiError::Unavailable(format!(
        "this node is answering {} execute requests already (nats.max_requests_in_flight); \
         try again shortly",
        ctx.config.nats.max_requests_in_flight
    ))
}

fn wants_json(msg: &Message) -> bool {
    msg.headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .is_some_and(|v| v.as_str().starts_with(JSON))
}

/// Replies in the request's encoding.
async fn respond<T: Serialize>(ctx: &NodeContext, msg: &Message, body: &T) {
    let Some(reply) = msg.reply.clone() else {
        return;
    };
    let client = &ctx.queue.client;
    let sent = if wants_json(msg) {
        let mut headers = HeaderMap::new();
        headers.insert("Content-Type", JSON);
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        client
            .publish_with_headers(reply, headers, bytes.into())
            .await
    } else {
        match records::encode(body) {
            Ok(bytes) => client.publish(reply, bytes).await,
            Err(e) => return tracing::error!(error = %e, "cannot encode a reply"),
        }
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not send a reply");
    }
}
