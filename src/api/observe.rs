//! Every response gets `X-Request-ID` (the client's, when it is a sane token, else a new UUID)
//! and `X-Response-Time`; every request is counted by method, route template and status.

use std::time::Instant;

use warp::http::{HeaderValue, Method};
use warp::path::FullPath;
use warp::reply::Response;

use crate::actors::metrics::MetricsMsg;
use crate::actors::{lookup, names};

/// One request in flight, from its arrival to its response.
pub struct Observation {
    metrics: String,
    method: Method,
    route: &'static str,
    request_id: String,
    started: Instant,
}

impl Observation {
    pub fn start(
        node: &str,
        method: Method,
        path: FullPath,
        request_id: Option<String>,
    ) -> Observation {
        let observation = Observation {
            metrics: names::metrics(node),
            method,
            route: route_template(path.as_str()),
            request_id: request_id
                .filter(|id| sane(id))
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            started: Instant::now(),
        };
        observation.send(MetricsMsg::HttpStarted);
        observation
    }

    /// Stamps the response and counts it.
    pub fn finish(self, mut response: Response) -> Response {
        let elapsed = self.started.elapsed();
        let headers = response.headers_mut();
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            headers.insert("x-request-id", id);
        }
        let time = format!("{:.3}ms", elapsed.as_secs_f64() * 1e3);
        headers.insert(
            "x-response-time",
            HeaderValue::from_str(&time).expect("ASCII"),
        );
        tracing::info!(
            request_id = %self.request_id,
            method = %self.method,
            route = self.route,
            status = response.status().as_u16(),
            elapsed_ms = elapsed.as_secs_f64() * 1e3,
            "request"
        );
        self.send(MetricsMsg::HttpFinished {
            method: self.method.to_string(),
            route: self.route,
            status: response.status().as_u16(),
            duration: elapsed,
        });
        response
    }

    fn send(&self, msg: MetricsMsg) {
        if let Some(metrics) = lookup::<MetricsMsg>(&self.metrics) {
            let _ = metrics.cast(msg);
        }
    }
}

/// Routes as templates, so that ids do not each become a metric label.
fn route_template(path: &str) -> &'static str {
    match path {
        "/execute" => "/execute",
        "/execute/async" => "/execute/async",
        "/languages" => "/languages",
        "/health" => "/health",
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
