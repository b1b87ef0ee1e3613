//! API errors and the one place where they, and warp's own rejections, become HTTP responses:
//! `{"error": {"code": "...", "message": "...", "field": ...}}`.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Rejection;

use crate::model::ValidationError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON for this endpoint: {0}")]
    InvalidJson(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    field: Option<&'a str>,
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
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        error_response(status, code, self.to_string(), field)
    }
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> Response {
    let body = Body {
        error: Detail {
            code,
            message,
            field,
        },
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// Turns warp's rejections (no such route, wrong method, body too large) into JSON errors.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
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
