//! The HTTP accept loop. Hand-written rather than `warp::serve`, because each request needs
//! its id and its row of the route table set before the routes run (handlers hand the id on
//! to the queue) and its span around the whole handling; warp's own server has no place for
//! either.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;
use tracing::Instrument;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::observe::Observation;
use super::routes::Lookup;
use super::unread::{self, Shared};

/// The address a request's connection came from.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// A listener, and the path prefix its requests are served under: `/judge0` on Judge0's own
/// port, where clients send Judge0's paths without one.
pub struct Listener {
    pub socket: TcpListener,
    pub prefix: Option<&'static str>,
}

/// Serves until `stop` turns true, then lets open requests finish. Connections may be upgraded
/// (the WebSocket routes); hyper-util's graceful shutdown does not take those, so each
/// connection watches `closing` itself.
pub async fn serve<F>(listener: Listener, routes: F, node: String, mut stop: watch::Receiver<bool>)
where
    F: Filter<Error = Infallible> + Clone + Send + Sync + 'static,
    F::Extract: Reply,
    F::Future: Send,
{
    let node: Arc<str> = node.into();
    let (closing, closed) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let Listener { socket, prefix } = listener;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { drop(stop.wait_for(|stop| *stop).await) } => break,
        };
        let routes = warp::service(routes.clone());
        let node = node.clone();
        let service = hyper::service::service_fn(move |request| {
            handle(node.clone(), peer, routes.clone(), under(prefix, request))
        });
        let connection = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut closed = closed.clone();
        while connections.try_join_next().is_some() {}
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { drop(closed.wait_for(|closing| *closing).await) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(socket);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// The request with its path under `prefix`, when the listener has one.
fn under(prefix: Option<&str>, mut request: hyper::Request<Incoming>) -> hyper::Request<Incoming> {
    let Some(prefix) = prefix else { return request };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    // Only a path that is not a path is refused by `Uri`; such a request keeps its own.
    if let Ok(uri) = format!("{prefix}{path}").parse() {
        *request.uri_mut() = uri;
    }
    request
}

async fn handle<S>(
    node: Arc<str>,
    peer: SocketAddr,
    mut routes: S,
    mut request: hyper::Request<Incoming>,
) -> Result<Response, Infallible>
where
    S: Service<hyper::Request<Shared>, Response = Response, Error = Infallible>,
{
    let route = Lookup::of(request.method(), request.uri().path());
    let observation = Observation::start(&node, &request, &route);
    let extensions = request.extensions_mut();
    extensions.insert(route);
    extensions.insert(observation.request_id.clone());
    // warp's own `addr::remote()` is filled only by warp's server; this is ours.
    extensions.insert(Peer(peer));
    let span = observation.span.clone();
    let (request, leftover) = unread::keep(request);
    let response = routes.call(request).instrument(span.clone()).await?;
    if !leftover.drain().await {
        span.in_scope(|| tracing::debug!("the unread request body did not end in time; closing"));
    }
    Ok(observation.finish(response))
}
