//! Where the tools' programs run: this node's application service (`/mcp`, and `codebeaker
//! mcp` with an embedded node), or a CodeBeaker server the process is pointed at over REST or
//! NATS (`codebeaker mcp --url/--nats`). Either way the job takes the ordinary path: validated
//! by the server, queued, run by a worker, its record returned.

use uuid::Uuid;

use crate::app::{AppError, Executions, RequestId};
use crate::client::{Client, ClientError};
use crate::languages::LanguageInfo;
use crate::model::{ExecuteRequest, ExecutionRecord};

#[derive(Clone)]
pub enum Runner {
    Local(Executions),
    Remote(Client),
}

/// Why a program did not run. Its message is what the agent reads, so it names the bad value
/// (the server's own words: an unknown language lists the known ones).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Client(#[from] ClientError),
}

impl Runner {
    /// Runs the request and waits for its record.
    pub async fn run(
        &self,
        request: ExecuteRequest,
        request_id: &RequestId,
    ) -> Result<ExecutionRecord, RunError> {
        match self {
            Runner::Local(app) => Ok(app.run(request, request_id).await?),
            Runner::Remote(client) => Ok(client.execute(&request).await?),
        }
    }

    /// Stops an execution whose caller gave up on it.
    pub async fn cancel(&self, id: Uuid) -> Result<(), RunError> {
        match self {
            Runner::Local(app) => app
                .cancel(&id.to_string())
                .await
                .map(drop)
                .map_err(Into::into),
            Runner::Remote(client) => Ok(client.cancel(id).await?),
        }
    }

    pub async fn languages(&self) -> Result<Vec<LanguageInfo>, RunError> {
        match self {
            Runner::Local(app) => Ok(app.languages()),
            Runner::Remote(client) => Ok(client.languages().await?),
        }
    }
}
