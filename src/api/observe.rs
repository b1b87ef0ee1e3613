//! Every response gets `X-Request-ID` (the client's, when it is a sane token, else a new UUID)
//! and `X-Response-Time`; every request is counted by method, route template and status.

use std::time::Instant;

use warp::http::{HeaderValue, Method, Request};
use warp::reply::Response;

use super::routes::Lookup;
use crate::actors::metrics::MetricsMsg;
use crate::actors::{lookup, names};
use crate::app::request_id::{RequestId, HEADER};

/// One request in flight, from its arrival to its response. Dropped unfinished (the client
/// went away mid-request), it still counts the request as ended, so that the in-flight gauge
/// stays right.
pub struct Observation {
    metrics: String,
    method: Method,
    finished: bool,
    route: &'static str,
    pub request_id: RequestId,
    /// Every log line written while handling the request carries its ids.
    pub span: tracing::Span,
    started: Instant,
}

impl Observation {
    pub fn start<B>(node: &str, request: &Request<B>, route: &Lookup) -> Observation {
        let request_id =
            RequestId::from_client(request.headers().get(HEADER).and_then(|v| v.to_str().ok()));
        let route = route.label();
        let span = tracing::info_span!(
            "request",
            request_id = request_id.as_str(),
            route,
            execution_id = tracing::field::Empty
        );
        let observation = Observation {
            metrics: names::metrics(node),
            method: request.method().clone(),
            finished: false,
            route,
            request_id,
            span,
            started: Instant::now(),
        };
        observation.send(MetricsMsg::HttpStarted);
        observation
    }

    /// Stamps the response, logs and counts it.
    pub fn finish(mut self, mut response: Response) -> Response {
        self.finished = true;
        let elapsed = self.started.elapsed();
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(self.request_id.as_str()) {
            headers.insert(HEADER, id);
        }
        let time = format!("{:.3}ms", elapsed.as_secs_f64() * 1e3);
        headers.insert(
            "x-response-time",
            HeaderValue::from_str(&time).expect("ASCII"),
        );
        self.span.in_scope(|| {
            tracing::info!(
                method = %self.method,
                status = response.status().as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "request"
            )
        });
        self.ended(response.status().as_u16(), elapsed);
        response
    }

    fn ended(&self, status: u16, duration: std::time::Duration) {
        self.send(MetricsMsg::HttpFinished {
            method: method_label(&self.method),
            route: self.route,
            status,
            duration,
        });
    }

    fn send(&self, msg: MetricsMsg) {
        if let Some(metrics) = lookup::<MetricsMsg>(&self.metrics) {
            let _ = metrics.cast(msg);
        }
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        if !self.finished {
            // 499, as nginx logs a request whose client closed the connection.
            self.ended(499, self.started.elapsed());
        }
    }
}

/// A method as a metric label: made-up methods all count as `other`, so that no client can
/// add series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}
