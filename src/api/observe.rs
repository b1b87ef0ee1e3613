//! Every response gets `X-Request-ID` (the client's, when it is a sane token, else a new UUID)
//! and `X-Response-Time`; every request is counted by method, route template and status.

use std::sync::Arc;
use std::time::Instant;

use warp::http::{HeaderValue, Method, Request};
use warp::reply::Response;

use crate::actors::metrics::MetricsMsg;
use crate::actors::{lookup, names};

/// The id that follows a request through logs, NATS headers and the worker that runs its job.
#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id when it is sane, else a new UUID.
    pub fn from_client(id: Option<&str>) -> RequestId {
        match id.filter(|id| sane(id)) {
            Some(id) => RequestId(id.into()),
            None => RequestId(uuid::Uuid::new_v4().to_string().into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    pub fn start<B>(node: &str, request: &Request<B>) -> Observation {
        let request_id =
            RequestId::from_client(request.headers().get(HEADER).and_then(|v| v.to_str().ok()));
        let route = route_template(request.uri().path());
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

/// The header that carries a request id, over HTTP and NATS alike.
pub const HEADER: &str = "x-request-id";

/// Routes as templates, so that ids do not each become a metric label.
fn route_template(path: &str) -> &'static str {
    match path {
        "/execute" => "/execute",
        "/execute/async" => "/execute/async",
        "/languages" => "/languages",
        "/health" => "/health",
        "/ready" => "/ready",
        "/workers" => "/workers",
        "/metrics" => "/metrics",
        p if p.starts_with("/execution/") => "/execution/{id}",
        _ => "other",
    }
}

/// A client's request id is kept when it is a short token of safe characters.
fn sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_templates() {
        assert_eq!(
            route_template("/execution/0e286953-fa59-4652-8583-aa28e9f1ab75"),
            "/execution/{id}"
        );
        assert_eq!(route_template("/execute"), "/execute");
        assert_eq!(route_template("/wp-admin"), "other");
    }

    #[test]
    fn only_sane_request_ids_are_echoed() {
        assert!(sane("req-42_a.b:c"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane(&"x".repeat(129)));
    }
}
