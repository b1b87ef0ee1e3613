//! The NATS request/reply adapter: `codebeaker.execute`, `codebeaker.languages` and
//! `codebeaker.workers`, in the queue group `codebeaker` so that API nodes share the load.
//! MessagePack (named fields) by default; a request with the header
//! `Content-Type: application/json` is read and answered in JSON. Like REST, it only parses
//! and answers: the application layer does the rest.

use std::sync::Arc;

use async_nats::{HeaderMap, Message};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::app::{AppError, Executions, RequestId};
use crate::config::NatsConfig;
use crate::model::ExecuteRequest;
use crate::queue::{names, records, QueueError};

const JSON: &str = "application/json";

/// What every answer needs: the connection to reply on, and the application.
#[derive(Clone)]
struct Adapter {
    client: async_nats::Client,
    app: Executions,
}

/// Subscribes, then answers until `stop` fires. At most `nats.max_requests_in_flight` execute
/// requests are handled at once; the rest are told at once to come back.
pub async fn start(
    client: async_nats::Client,
    app: Executions,
    config: &NatsConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, QueueError> {
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
    let bound = config.max_requests_in_flight;
    let in_flight = Arc::new(Semaphore::new(bound));
    let adapter = Adapter { client, app };
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(msg) = execute.next() => match in_flight.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let adapter = adapter.clone();
                        tokio::spawn(async move {
                            adapter.answer_execute(msg).await;
                            drop(permit);
                        });
                    }
                    Err(_) => adapter.respond(&msg, &busy(bound).body()).await,
                },
                Some(msg) = languages.next() => {
                    adapter.respond(&msg, &adapter.app.languages()).await;
                }
                Some(msg) = workers.next() => {
                    match adapter.app.cluster().await {
                        Ok(nodes) => adapter.respond(&msg, &nodes).await,
                        Err(e) => adapter.respond(&msg, &e.body()).await,
                    }
                }
                _ = stop.changed() => return,
                else => return,
            }
        }
    }))
}

impl Adapter {
    async fn answer_execute(&self, msg: Message) {
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
        self.answer(msg, request_id).instrument(span).await
    }

    async fn answer(&self, msg: Message, request_id: RequestId) {
        let request: Result<ExecuteRequest, AppError> = if wants_json(&msg) {
            serde_json::from_slice(&msg.payload).map_err(|e| AppError::InvalidJson(e.to_string()))
        } else {
            records::decode(&msg.payload).map_err(|e| AppError::InvalidJson(e.to_string()))
        };
        let outcome = match request {
            Ok(request) => self.app.run(request, &request_id).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(record) => self.respond(&msg, &record).await,
            Err(e) => self.respond(&msg, &e.body()).await,
        }
    }

    /// Replies in the request's encoding.
    async fn respond<T: Serialize>(&self, msg: &Message, body: &T) {
        let Some(reply) = msg.reply.clone() else {
            return;
        };
        let sent = if wants_json(msg) {
            let mut headers = HeaderMap::new();
            headers.insert("Content-Type", JSON);
            let bytes = serde_json::to_vec(body).unwrap_or_default();
            self.client
                .publish_with_headers(reply, headers, bytes.into())
                .await
        } else {
            match records::encode(body) {
                Ok(bytes) => self.client.publish(reply, bytes).await,
                Err(e) => return tracing::error!(error = %e, "cannot encode a reply"),
            }
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send a reply");
        }
    }
}

fn busy(bound: usize) -> AppError {
    AppError::Unavailable(format!(
        "this node is answering {bound} execute requests already (nats.max_requests_in_flight); \
         try again shortly"
    ))
}

fn wants_json(msg: &Message) -> bool {
    msg.headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .is_some_and(|v| v.as_str().starts_with(JSON))
}
