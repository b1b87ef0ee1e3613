//! What can go wrong in the application, and the one table that maps each error to what
//! every API answers: an HTTP status, a stable code and the field at fault. REST answers the
//! status with the body; NATS request/reply sends the same body.
//! `{"error": {"code": "...", "message": "...", "field": ...}}`.

use http::StatusCode;
use serde::Serialize;

use uuid::Uuid;

use crate::model::{ExecutionRecord, ValidationError};
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the request body is not valid for this endpoint: {0}")]
    InvalidJson(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("`{given}` is not {} id (a UUID)", what.article())]
    BadId { what: Thing, given: String },
    #[error("no {} {id}", what.as_str())]
    NotFound { what: Thing, id: Uuid },
    /// One execution of a batch is refused, and with it the whole batch: nothing was queued.
    #[error("executions[{index}]: {source}")]
    InBatch {
        index: usize,
        #[source]
        source: Box<AppError>,
    },
    #[error("execution {} already finished ({})", .0.execution_id, .0.status.as_str())]
    AlreadyFinished(Box<ExecutionRecord>),
    #[error("the job queue is unavailable: {0}")]
    Queue(#[from] QueueError),
    #[error("{0}")]
    Unavailable(String),
    #[error(
        "no worker runs {language} yet: its image {image} is not built on any worker node \
         (scripts/setup.sh --languages {language} builds it; the node serves it within seconds)"
    )]
    LanguageUnavailable { language: String, image: String },
    #[error("not ready: {0}")]
    NotReady(String),
}

/// The error body, over HTTP and over NATS alike.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: Detail,
}

#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Detail {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Thing {
    Execution,
    Batch,
}

impl Thing {
    fn as_str(self) -> &'static str {
        match self {
            Thing::Execution => "execution",
            Thing::Batch => "batch",
        }
    }

    fn article(self) -> &'static str {
        match self {
            Thing::Execution => "an execution",
            Thing::Batch => "a batch",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Thing::Execution => "execution_id",
            Thing::Batch => "batch_id",
        }
    }
}

impl AppError {
    pub fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            AppError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json", None),
            AppError::Invalid(invalid) => validation_parts(invalid),
            AppError::BadId { what, .. } => {
                (StatusCode::BAD_REQUEST, "invalid_id", Some(what.field()))
            }
            AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", None),
            AppError::InBatch { source, .. } => source.parts(),
            AppError::AlreadyFinished(_) => (StatusCode::CONFLICT, "already_finished", None),
            AppError::Queue(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", None),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            AppError::LanguageUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "language_unavailable",
                Some("language"),
            ),
            AppError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready", None),
        }
    }
}

fn validation_parts(error: &ValidationError) -> (StatusCode, &'static str, Option<&'static str>) {
    use ValidationError as V;
    match error {
        V::UnknownLanguage { .. } => (
            StatusCode::BAD_REQUEST,
            "unknown_language",
            Some("language"),
        ),
        V::Invalid { field, .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        ),
        V::TooLarge { field, .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", Some(field)),
        V::Limit(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_out_of_range",
            Some(e.field),
        ),
        V::Package { .. } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "package_not_allowed",
            Some("packages"),
        ),
        V::InTest { source, .. } => validation_parts(source),
    }
}

impl AppError {
    pub fn body(&self) -> ErrorBody {
        let (_, code, field) = self.parts();
        ErrorBody::new(code, self.to_string(), field)
    }
}

impl ErrorBody {
    pub fn new(code: &str, message: String, field: Option<&str>) -> ErrorBody {
        ErrorBody {
            error: Detail {
                code: code.to_string(),
                message,
                field: field.map(str::to_string),
            },
        }
    }
}
