//! A client for a CodeBeaker server, over REST or NATS request/reply (MessagePack), used by
//! the CLI subcommands and usable by any Rust program.

use std::time::Duration;

use crate::app::ErrorBody;
use crate::config::NatsConfig;
use crate::languages::LanguageInfo;
use crate::model::{ExecuteRequest, ExecutionRecord, ExecutionRef};
use crate::queue::nodes::NodeEntry;
use crate::queue::{names, records};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("the server refused the request: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("the server's answer could not be read: {0}")]
    BadAnswer(String),
}

#[derive(Clone)]
enum Transport {
    Rest {
        http: reqwest::Client,
        base: String,
    },
    Nats {
        client: async_nats::Client,
        url: String,
    },
}

#[derive(Clone)]
pub struct Client {
    transport: Transport,
}

/// Time allowed beyond a job's own timeout for queueing and transport.
const ALLOWANCE: Duration = Duration::from_secs(90);

impl Client {
    pub fn rest(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()
            .expect("HTTP client");
        Client {
            transport: Transport::Rest {
                http,
                base: base.trim_end_matches('/').to_string(),
            },
        }
    }

    /// Connects with the credentials in `config` (see `queue::embedded::with_kept_credentials`
    /// for those of a local `serve`).
    pub async fn nats(url: &str, config: &NatsConfig) -> Result<Client, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            target: url.to_string(),
            reason,
        };
        let client = crate::queue::connect_options(config)
            .await
            .map_err(unreachable)?
            .connect(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Client {
            transport: Transport::Nats {
                client,
                url: url.to_string(),
            },
        })
    }

    /// Runs the code and waits for its record.
    pub async fn execute(&self, request: &ExecuteRequest) -> Result<ExecutionRecord, ClientError> {
        let wait = Duration::from_secs_f64(request.timeout.unwrap_or(60.0)) + ALLOWANCE;
        match &self.transport {
            Transport::Rest { http, base } => {
                let url = format!("{base}/execute");
                let response = http.post(&url).json(request).timeout(wait).send().await;
                rest_answer(&url, response).await
            }
            Transport::Nats { client, url } => {
                let payload =
                    records::encode(request).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
                let reply = nats_request(client, url, names::EXECUTE, payload, wait).await?;
                nats_answer(&reply)
            }
        }
    }

    /// Runs the code, handing each live event (`status`, `stdout`, `stderr`, `usage`) to
    /// `each` as it comes, and returns the final record. REST only: the events are SSE.
    pub async fn stream(
        &self,
        request: &ExecuteRequest,
        mut each: impl FnMut(&str, &serde_json::Value),
    ) -> Result<ExecutionRecord, ClientError> {
        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        let Transport::Rest { http, base } = &self.transport else {
            return Err(ClientError::BadAnswer(
                "streaming output needs the REST API (--url), not NATS".into(),
            ));
        };
        let url = format!("{base}/execute/async");
        let accepted: ExecutionRef =
            rest_answer(&url, http.post(&url).json(request).send().await).await?;
        let url = format!("{base}/execution/{}/events", accepted.execution_id);
        let unreachable = |e: String| ClientError::Unreachable {
            target: url.clone(),
            reason: e,
        };
        let response = http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut events = response.bytes_stream().eventsource();
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| unreachable(e.to_string()))?;
            let bad = |e: serde_json::Error| ClientError::BadAnswer(e.to_string());
            if event.event == "final" {
                return serde_json::from_str(&event.data).map_err(bad);
            }
            each(
                &event.event,
                &serde_json::from_str(&event.data).map_err(bad)?,
            );
        }
        // The stream broke before the end: the record says how far the job got.
        let url = format!("{base}/execution/{}", accepted.execution_id);
        rest_answer(&url, http.get(&url).send().await).await
    }

    /// Stops an execution: over REST a cancel (`DELETE /execution/{id}`: a queued job never
    /// runs, a running one is killed); over NATS the cancel subject, which the node running
    /// the job heeds (a job still queued then runs).
    pub async fn cancel(&self, id: uuid::Uuid) -> Result<(), ClientError> {
        match &self.transport {
            Transport::Rest { http, base } => {
                let url = format!("{base}/execution/{id}");
                let answer: Result<serde_json::Value, _> =
                    rest_answer(&url, http.delete(&url).send().await).await;
                match answer {
                    // It had already finished, which is as good.
                    Err(ClientError::Refused { code, .. }) if code == "already_finished" => Ok(()),
                    other => other.map(drop),
                }
            }
            Transport::Nats { client, url } => {
                let subject = names::cancel_subject(&id);
                client
                    .publish(subject, bytes::Bytes::new())
                    .await
                    .map_err(|e| ClientError::Unreachable {
                        target: url.clone(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    pub async fn languages(&self) -> Result<Vec<LanguageInfo>, ClientError> {
        self.list("languages", names::LANGUAGES).await
    }

    /// The cluster's live nodes.
    pub async fn cluster(&self) -> Result<Vec<NodeEntry>, ClientError> {
        self.list("workers", names::WORKERS).await
    }

    /// A GET of `/{path}`, or an empty request on `subject`.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        subject: &'static str,
    ) -> Result<T, ClientError> {
        match &self.transport {
            Transport::Rest { http, base } => {
                let url = format!("{base}/{path}");
                rest_answer(&url, http.get(&url).send().await).await
            }
            Transport::Nats { client, url } => {
                let empty = bytes::Bytes::new();
                let wait = Duration::from_secs(10);
                let reply = nats_request(client, url, subject, empty, wait).await?;
                nats_answer(&reply)
            }
        }
    }
}

async fn rest_answer<T: serde::de::DeserializeOwned>(
    url: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ClientError> {
    let response = response.map_err(|e| ClientError::Unreachable {
        target: url.to_string(),
        reason: e.to_string(),
    })?;
    if !response.status().is_success() {
        let body: ErrorBody = response
            .json()
            .await
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        return Err(refused(body));
    }
    response
        .json()
        .await
        .map_err(|e| ClientError::BadAnswer(e.to_string()))
}

async fn nats_request(
    client: &async_nats::Client,
    url: &str,
    subject: &'static str,
    payload: bytes::Bytes,
    wait: Duration,
) -> Result<bytes::Bytes, ClientError> {
    let request = async_nats::Request::new()
        .payload(payload)
        .timeout(Some(wait));
    let reply =
        client
            .send_request(subject, request)
            .await
            .map_err(|e| ClientError::Unreachable {
                target: format!("{url} ({subject})"),
                reason: e.to_string(),
            })?;
    Ok(reply.payload)
}

/// A MessagePack reply is either an error body or the answer itself.
fn nats_answer<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, ClientError> {
    if let Ok(body) = records::decode::<ErrorBody>(payload) {
        return Err(refused(body));
    }
    records::decode(payload).map_err(|e| ClientError::BadAnswer(e.to_string()))
}

fn refused(body: ErrorBody) -> ClientError {
    ClientError::Refused {
        code: body.error.code,
        message: body.error.message,
    }
}
