//! Where application errors, and warp's own rejections, become HTTP responses. The status
//! and code of each application error come from its one table ([`AppError::parts`]).

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Rejection;

use super::guard::{RateLimited, Unauthorized};
use super::routes::WrongMethod;
use crate::app::{AppError, ErrorBody};

impl Reply for AppError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        warp::reply::with_status(warp::reply::json(&self.body()), status).into_response()
    }
}

fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<&str>,
) -> Response {
    warp::reply::with_status(
        warp::reply::json(&ErrorBody::new(code, message, field)),
        status,
    )
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
    } else if rejection
        .find::<warp::filters::cors::CorsForbidden>()
        .is_some()
    {
        (
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "this server does not take requests from that origin (see api.cors_origins)"
                .to_string(),
        )
    } else if let Some(invalid) = rejection.find::<warp::reject::InvalidQuery>() {
        (
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("the query string is not valid for this endpoint: {invalid}"),
        )
    } else if rejection.find::<WrongMethod>().is_some() {
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
