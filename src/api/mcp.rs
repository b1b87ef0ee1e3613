//! `POST /mcp`: the MCP adapter's streamable HTTP transport on the REST listener, behind the
//! same API keys and rate limits as every execution route. rmcp's service answers; this hands
//! it the request as warp read it (with the request's id, so that the job's logs join the
//! request's) and hands its answer back.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::Filter;

use super::guard::Guard;
use super::routes::{plain, Route};
use crate::app::{Executions, RequestId};
use crate::mcp::{self, Runner};

type Routes = warp::filters::BoxedFilter<(Response,)>;

/// Browsers on this machine may call; others only from the origins the API names
/// (`api.cors_origins`). A page anywhere else, such as one whose name was rebound to a
/// loopback address, gets 403.
const LOOPBACK_ORIGINS: [&str; 6] = [
    "http://localhost:*",
    "http://127.0.0.1:*",
    "http://[::1]:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
    "https://[::1]:*",
];

pub fn routes(guard: Arc<Guard>, app: Executions, max_body: u64) -> Routes {
    let origins = allowed_origins(&app.config().api.cors_origins);
    let service = Arc::new(mcp::http_service(
        Runner::Local(app),
        origins,
        max_body as usize,
    ));
    plain(Route::Mcp)
        .and(guard.filter())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(max_body).and(warp::body::bytes()))
        .and(warp::ext::get::<RequestId>())
        .then(move |headers, body, id| answer(service.clone(), headers, body, id))
        .boxed()
}

async fn answer(
    service: Arc<mcp::HttpService>,
    headers: HeaderMap,
    body: Bytes,
    id: RequestId,
) -> Response {
    let mut request = http::Request::post("/mcp")
        .body(Full::new(body))
        .expect("a POST with a body is a request");
    *request.headers_mut() = headers;
    request.extensions_mut().insert(id);
    let (parts, body) = service.handle(request).await.into_parts();
    // Without sessions a reply ends with its call (JSON, or an SSE stream when a handler
    // sends notifications first, which ours do not): it is read whole.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    Response::from_parts(parts, body.into())
}

/// The loopback origins and the configured ones, each with its port (an origin without one
/// means the scheme's default, as browsers send it).
fn allowed_origins(configured: &[String]) -> Vec<String> {
    let with_port = |origin: &String| match url::Url::parse(origin) {
        Ok(url) if url.port().is_none() => match url.port_or_known_default() {
            Some(port) => format!("{}:{port}", origin.trim_end_matches('/')),
            None => origin.clone(),
        },
        _ => origin.clone(),
    };
    LOOPBACK_ORIGINS
        .iter()
        .map(|o| o.to_string())
        .chain(configured.iter().map(with_port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_origins_keep_or_gain_their_port() {
        let configured = [
            "https://app.example.com".to_string(),
            "http://console.example.com:8080".to_string(),
        ];
        let origins = allowed_origins(&configured);
        assert!(origins.contains(&"https://app.example.com:443".to_string()));
        assert!(origins.contains(&"http://console.example.com:8080".to_string()));
        assert!(origins.contains(&"http://127.0.0.1:*".to_string()));
    }
}
