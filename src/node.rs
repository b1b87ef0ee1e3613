//! A running node: the actor tree plus the REST API, started and stopped as one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::actors::supervisor::{NodeStatus, Supervisor, SupervisorMsg};
use crate::actors::{names, NodeContext};
use crate::api::{self, ApiState};
use crate::config::Config;
use crate::languages::{Languages, LanguagesError};
use crate::sandbox::{Sandbox, SandboxError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Languages(#[from] LanguagesError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("the actor tree did not start: {0}")]
    Actors(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Node {
    /// Where the REST API listens (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    ctx: Arc<NodeContext>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
    server: JoinHandle<()>,
    stop_server: oneshot::Sender<()>,
}

impl Node {
    pub async fn start(config: Config) -> Result<Node, StartError> {
        let languages = Languages::load(config.languages_file.as_deref())?;
        let sandbox = Sandbox::connect(&config.node_id, &config.docker).await?;
        let leftovers = sandbox.remove_node_containers().await?;
        if leftovers > 0 {
            tracing::info!(
                leftovers,
                "removed containers left behind by an earlier run of this node"
            );
        }
        let ctx = Arc::new(NodeContext {
            config,
            languages,
            sandbox,
        });
        let (supervisor, supervisor_done) = Actor::spawn(
            Some(names::supervisor(ctx.node_id())),
            Supervisor,
            ctx.clone(),
        )
        .await
        .map_err(|e| StartError::Actors(spawn_error_text(e)))?;

        let listen = ctx.config.listen;
        let listener = match TcpListener::bind(listen).await {
            Ok(listener) => listener,
            Err(source) => {
                supervisor.stop_and_wait(None, None).await.ok();
                return Err(StartError::Bind {
                    addr: listen,
                    source,
                });
            }
        };
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
        let (stop_server, stopped) = oneshot::channel::<()>();
        let routes = api::routes(Arc::new(ApiState {
            ctx: ctx.clone(),
            supervisor: supervisor.clone(),
        }));
        let server = tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async {
                    let _ = stopped.await;
                })
                .run(),
        );
        tracing::info!(
            node = ctx.node_id(),
            workers = ctx.config.workers,
            languages = ?ctx.languages.names(),
            "CodeBeaker node ready; REST API on http://{addr}"
        );
        Ok(Node {
            addr,
            ctx,
            supervisor,
            supervisor_done,
            server,
            stop_server,
        })
    }

    pub fn node_id(&self) -> &str {
        self.ctx.node_id()
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        match self
            .supervisor
            .call(SupervisorMsg::Status, Some(Duration::from_secs(5)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(status)) => Some(status),
            _ => None,
        }
    }

    /// Stops taking requests, ends running jobs, stops the actors, and removes every container
    /// of this node. (Draining jobs to other nodes comes with the queue.)
    pub async fn shutdown(self) {
        tracing::info!(node = self.node_id(), "shutting down");
        let _ = self.stop_server.send(());
        remove_containers(&self.ctx, "running at shutdown").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.supervisor
            .stop_and_wait(Some("node shutdown".into()), Some(Duration::from_secs(10)))
            .await
            .ok();
        let _ = self.supervisor_done.await;
        remove_containers(&self.ctx, "created during shutdown").await;
        tracing::info!("stopped");
    }
}

async fn remove_containers(ctx: &NodeContext, what: &str) {
    match ctx.sandbox.remove_node_containers().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed containers {what}"),
        Err(e) => tracing::warn!(error = %e, "could not remove containers {what}"),
    }
}

/// ractor wraps a failed `pre_start` in layers; the innermost message is the useful one.
fn spawn_error_text(e: ractor::SpawnErr) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        text = inner.to_string();
        source = inner.source();
    }
    text
}
