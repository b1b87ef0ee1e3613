//! A small REST client for a CodeBeaker server, used by the CLI subcommands.

use std::time::Duration;

use crate::model::{ExecuteRequest, ExecutionRecord};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server refused the request ({status}): {body}")]
    Refused { status: u16, body: String },
    #[error("the server's answer is not a record: {0}")]
    BadAnswer(#[source] reqwest::Error),
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("HTTP client"),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `POST /execute`: runs and waits for the record.
    pub async fn execute(&self, request: &ExecuteRequest) -> Result<ExecutionRecord, ClientError> {
        let url = format!("{}/execute", self.base);
        let response = self
            .http
            .post(&url)
            .json(request)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Refused {
                status: status.as_u16(),
                body,
            });
        }
        response.json().await.map_err(ClientError::BadAnswer)
    }
}
