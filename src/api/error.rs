//! API errors and the one place where they, and warp's own rejections, become HTTP responses:
//! `{"error": {"code": "...", "message": "...", "field": ...}}`.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Rejection;

use uuid::Uuid;

use super::guard::{RateLimited, Unauthorized};
use crate::model::{ExecutionRecord, ValidationError};
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid for this endpoint: {0}")]
    InvalidJson(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("`{0}` is not an execution id (a UUID)")]
    BadId(String),
    #[error("no execution {0}")]
    NotFound(Uuid),
    #[error("execution {} already finished ({})", .0.execution_id, .0.status.as_str())]
    AlreadyFinished(Box<ExecutionRecord>),
    #[error("the job queue is unavailable: {0}")]
    Queue(#[from] QueueError),
    #[error("{0}")]
    Unavailable(String),
    #[error("not ready: {0}")]
    NotReady(String),
}

/// The error body, over HTTP and over NATS alike.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: Detail,
}

#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Detail {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        use ValidationError as V;
        match self {
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json", None),
            ApiError::Invalid(V::UnknownLanguage { .. }) => (
                StatusCode::BAD_REQUEST,
                "unknown_language",
                Some("language"),
            ),
            ApiError::Invalid(V::Invalid { field, .. }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Some(field),
            ),
            ApiError::Invalid(V::TooLarge { field, .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large", Some(field))
            }
            ApiError::Invalid(V::Limit(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_out_of_range",
                Some(e.field),
            ),
            ApiError::Invalid(V::Package { .. }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "package_not_allowed",
                Some("packages"),
            ),
            ApiError::BadId(_) => (StatusCode::BAD_REQUEST, "invalid_id", Some("execution_id")),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::AlreadyFinished(_) => (StatusCode::CONFLICT, "already_finished", None),
            ApiError::Queue(_) => (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable", None),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready", None),
        }
    }
}

impl ApiError {
    pub fn body(&self) -> ErrorBody {
        let (_, code, field) = self.parts();
        error_body(code, self.to_string(), field)
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        warp::reply::with_status(warp::reply::json(&self.body()), status).into_response()
    }
}

fn error_body(code: &str, message: String, field: Option<&str>) -> ErrorBody {
    ErrorBody {
        error: Detail {
            code: code.to_string(),
            message,
            field: field.map(str::to_string),
        },
    }
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> Response {
    warp::reply::with_status(warp::reply::json(&error_body(code, message, field)), status)
        .into_response()
}

/// Turns warp's rejections (no such route, wrong method, body too large) and the guard's
/// (no key, too many requests) into JSON errors.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if rejection.find::<Unauthorized>().is_some() {
        let message = "send a valid API key as `Authorization: Bearer <key>`".to_string();
        let response = error_response(StatusCode::UNAUTHORIZED, "unauthorized", message, None);
        return Ok(
            warp::reply::with_header(response, "www-authenticate", "Bearer").into_response(),
        );
    }
    if let Some(RateLimited(wait)) = rejection.find() {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        let message = format!("too many requests; retry in {seconds} s");
        let response = error_response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message, None);
        return Ok(
            warp::reply::with_header(response, "retry-after", seconds.to_string()).into_response(),
        );
    }
    let (status, code, message) = if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint".to_string(),
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this server accepts".to_string(),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length header with the body".to_string(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method".to_string(),
        )
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        (
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{rejection:?}"),
        )
    };
    Ok(error_response(status, code, message, None))
}
