//! A running node: NATS, the actor tree, the queue consumer and the REST API, started and
//! stopped as one. The role decides which halves run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::actors::heartbeat::{Beat, Heartbeat};
use crate::actors::supervisor::{self, NodeStatus, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::actors::{names, NodeContext, WorkerContext};
use crate::api::server::Listener;
use crate::api::{self, ApiState};
use crate::app::Executions;
use crate::config::{Config, ConfigError};
use crate::languages::{Languages, LanguagesError};
use crate::nats_api;
use crate::queue::embedded::{EmbeddedError, EmbeddedNats};
use crate::queue::{consumer, rescue, Queue, QueueError};
use crate::sandbox::images::{self, Installed};
use crate::sandbox::{Sandbox, SandboxError};
use crate::webhooks;

/// Which halves of CodeBeaker a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and workers; starts its own nats-server when no URL is configured.
    Serve,
    /// REST and NATS request/reply; publishes jobs and reads records. Needs no Docker.
    Api,
    /// Pulls jobs and runs them. Serves only /health and /metrics over HTTP.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
    fn has_api(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }
    fn has_workers(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Languages(#[from] LanguagesError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    EmbeddedNats(#[from] EmbeddedError),
    #[error("the actor tree did not start: {0}")]
    Actors(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Where a node without a configured URL looks for NATS, unless it runs its own.
const DEFAULT_NATS: &str = "nats://127.0.0.1:4222";

pub struct Node {
    /// Where the HTTP server listens (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// Where the Judge0 API listens on a port of its own (`[judge0] listen`), if it does.
    pub judge0_addr: Option<SocketAddr>,
    pub role: Role,
    ctx: Arc<NodeContext>,
    worker: Option<Arc<WorkerContext>>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
    heartbeat: Heartbeat,
    server: JoinHandle<()>,
    stop_server: watch::Sender<bool>,
    /// Stops what takes new work: the queue consumer, rescues, NATS request/reply.
    stop_intake: watch::Sender<bool>,
    /// Stops the rest once the drain is over (cancels must reach jobs while they drain).
    stop_after_drain: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    embedded: Option<EmbeddedNats>,
}

/// What a node runs once its actor tree is up.
struct Services {
    heartbeat: Heartbeat,
    stop_intake: watch::Sender<bool>,
    stop_after_drain: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// Starts a node. A start that fails half-way stops what it had started (the embedded
    /// nats-server, the actor tree and its pools) before it returns the error.
    pub async fn start(config: Config, role: Role) -> Result<Node, StartError> {
        config.validate()?;
        let languages = Languages::load(config.languages_file.as_deref())?;
        let embedded = match (&config.nats.url, role) {
            (None, Role::Serve) => {
                Some(EmbeddedNats::start(config.nats.embedded_port, &config.nats.data_dir).await?)
            }
            _ => None,
        };
        match Self::start_on(config, languages, role, embedded.as_ref()).await {
            Ok(mut node) => {
                node.embedded = embedded;
                Ok(node)
            }
            Err(e) => {
                if let Some(embedded) = embedded {
                    embedded.stop().await;
                }
                Err(e)
            }
        }
    }

    async fn start_on(
        mut config: Config,
        languages: Languages,
        role: Role,
        embedded: Option<&EmbeddedNats>,
    ) -> Result<Node, StartError> {
        let url = embedded
            .map(|e| e.url.clone())
            .or_else(|| config.nats.url.clone())
            .unwrap_or_else(|| DEFAULT_NATS.to_string());
        if let Some(embedded) = embedded {
            config.nats.user = Some(embedded.credentials.user.clone());
            config.nats.password = Some(embedded.credentials.password.clone());
            config.nats.token = None;
            config.nats.creds_file = None;
        }
        let queue = Queue::connect(&url, &config.nats, Duration::from_secs(30)).await?;
        tracing::info!(%url, "connected to NATS; stream and buckets ready");
        let ctx = Arc::new(NodeContext {
            config,
            languages,
            queue,
        });
        let worker = match role.has_workers() {
            true => Some(Arc::new(worker_context(&ctx).await?)),
            false => None,
        };
        let listen = ctx.config.listen;
        let bind_error = |source| StartError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let judge0 = match (role.has_api(), ctx.config.judge0.listen) {
            (true, Some(listen)) => {
                let bind_error = |source| StartError::Bind {
                    addr: listen,
                    source,
                };
                let socket = TcpListener::bind(listen).await.map_err(bind_error)?;
                Some(socket)
            }
            _ => None,
        };
        let judge0_addr = judge0.as_ref().and_then(|s| s.local_addr().ok());

        let freed = Arc::new(Notify::new());
        let (beat, beats) = watch::channel(Beat::default());
        let args = SupervisorArgs {
            node: ctx.clone(),
            role: role.as_str(),
            worker: worker.clone(),
            freed: freed.clone(),
            beat,
        };
        let (supervisor, supervisor_done) =
            Actor::spawn(Some(names::supervisor(ctx.node_id())), Supervisor, args)
                .await
                .map_err(|e| StartError::Actors(spawn_error_text(e)))?;
        let services = match start_services(&ctx, role, &worker, &supervisor, freed, beats).await {
            Ok(services) => services,
            Err(e) => {
                supervisor.stop_and_wait(None, None).await.ok();
                return Err(e);
            }
        };

        let (stop_server, server_stopped) = watch::channel(false);
        let state = Arc::new(ApiState {
            ctx: ctx.clone(),
            executions: Executions::new(ctx.clone()),
            supervisor: supervisor.clone(),
        });
        let routes = api::routes(state, role.has_api());
        let listeners = std::iter::once(Listener {
            socket: listener,
            prefix: None,
        })
        .chain(judge0.map(|socket| Listener {
            socket,
            prefix: Some("/judge0"),
        }));
        let servers: Vec<_> = listeners
            .map(|listener| {
                let node = ctx.node_id().to_string();
                api::server::serve(listener, routes.clone(), node, server_stopped.clone())
            })
            .collect();
        let server = tokio::spawn(async move { drop(futures::future::join_all(servers).await) });
        tracing::info!(
            node = ctx.node_id(),
            role = role.as_str(),
            workers = if role.has_workers() { ctx.config.workers } else { 0 },
            languages = ?ctx.languages.names(),
            "CodeBeaker node ready; HTTP on http://{addr}"
        );
        if let Some(judge0) = judge0_addr {
            tracing::info!("the Judge0 API also on http://{judge0}");
        }
        let Services {
            heartbeat,
            stop_intake,
            stop_after_drain,
            tasks,
        } = services;
        Ok(Node {
            addr,
            judge0_addr,
            role,
            ctx,
            worker,
            supervisor,
            supervisor_done,
            heartbeat,
            server,
            stop_server,
            stop_intake,
            stop_after_drain,
            tasks,
            embedded: None,
        })
    }

    pub fn node_id(&self) -> &str {
        self.ctx.node_id()
    }

    /// The application service over this node's queue, for an adapter in the same process.
    pub fn executions(&self) -> Executions {
        Executions::new(self.ctx.clone())
    }

    pub async fn status(&self) -> Option<NodeStatus> {
        supervisor::status(&self.supervisor).await
    }

    /// Stops taking work, lets running jobs finish within the drain timeout, hands the rest
    /// back to the queue (NAK: another node takes them at once), removes this node's heartbeat
    /// and containers, and stops everything.
    pub async fn shutdown(self) {
        tracing::info!(
            node = self.node_id(),
            "shutting down: no new jobs; draining running ones"
        );
        let Node {
            ctx,
            worker,
            supervisor,
            supervisor_done,
            heartbeat,
            server,
            stop_server,
            stop_intake,
            stop_after_drain,
            tasks,
            embedded,
            ..
        } = self;
        let _ = stop_server.send(true);
        let _ = stop_intake.send(true);
        let drain = Duration::from_secs(ctx.config.drain_timeout_secs);
        if !drained(&supervisor, drain).await {
            if let Some(worker) = &worker {
                let n = worker.hand_back_all();
                tracing::warn!(
                    jobs = n,
                    "drain timeout passed; handing the running jobs back to the queue"
                );
            }
            // Killing a container and NAKing takes a moment; a worker that cannot is killed
            // (its job then comes back after ack_wait).
            if !drained(&supervisor, HAND_BACK_PATIENCE).await {
                if let Some(status) = supervisor::status(&supervisor).await {
                    status.workers.iter().for_each(|w| w.kill());
                }
            }
        }
        let _ = stop_after_drain.send(true);
        // The heartbeat ends before the Supervisor, which removes the node's entry as it stops.
        heartbeat.stop().await;
        supervisor
            .stop_and_wait(Some("node shutdown".into()), Some(Duration::from_secs(10)))
            .await
            .ok();
        let _ = supervisor_done.await;
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        if let Some(worker) = &worker {
            // Warm-ups that were creating a container as the pools stopped make it yet.
            worker.warmups.close();
            let _ = tokio::time::timeout(WARMUP_PATIENCE, worker.warmups.wait()).await;
            match worker.sandbox.remove_node_containers().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed containers left at shutdown"),
                Err(e) => tracing::warn!(error = %e, "could not remove containers at shutdown"),
            }
        }
        if let Some(embedded) = embedded {
            embedded.stop().await;
        }
        tracing::info!("stopped");
    }
}

/// How long hand-backs at the end of a drain may take.
const HAND_BACK_PATIENCE: Duration = Duration::from_secs(10);
/// How long a stopping node waits for its pools' warm-ups under way (a container create and
/// start each) before its last sweep for containers.
const WARMUP_PATIENCE: Duration = Duration::from_secs(15);

/// Asks the Supervisor to drain; true when no job runs any more within `patience`.
async fn drained(supervisor: &ActorRef<SupervisorMsg>, patience: Duration) -> bool {
    let answer = supervisor.call(SupervisorMsg::Drain, Some(patience)).await;
    matches!(answer, Ok(CallResult::Success(())))
}

/// The heartbeat (its first entry written before any job is taken), then the queue consumer,
/// rescues, cancels and request/reply. Nothing is spawned unless all of it can start.
async fn start_services(
    ctx: &Arc<NodeContext>,
    role: Role,
    worker: &Option<Arc<WorkerContext>>,
    supervisor: &ActorRef<SupervisorMsg>,
    freed: Arc<Notify>,
    beats: watch::Receiver<Beat>,
) -> Result<Services, StartError> {
    let heartbeat = Heartbeat::start(
        ctx.clone(),
        role.as_str(),
        worker.clone(),
        beats,
        supervisor.get_cell(),
    )
    .await?;
    let (stop_intake, intake_stopped) = watch::channel(false);
    let (stop_after_drain, drained) = watch::channel(false);
    let mut tasks = Vec::new();
    if role.has_api() {
        let client = ctx.queue.client.clone();
        let app = Executions::new(ctx.clone());
        match nats_api::start(client, app, &ctx.config.nats, intake_stopped.clone()).await {
            Ok(task) => tasks.push(task),
            Err(e) => {
                heartbeat.stop().await;
                return Err(e.into());
            }
        }
    }
    if ctx.config.webhooks.enabled() {
        tasks.push(tokio::spawn(webhooks::run(
            ctx.queue.clone(),
            ctx.config.webhooks.clone(),
            crate::api::judge0::callback(ctx.languages.clone()),
            intake_stopped.clone(),
        )));
    }
    if let Some(worker) = worker {
        tasks.push(tokio::spawn(consumer::run(
            ctx.clone(),
            supervisor.clone(),
            freed,
            intake_stopped.clone(),
        )));
        tasks.push(tokio::spawn(rescue::run(
            ctx.queue.clone(),
            ctx.node_id().to_string(),
            intake_stopped,
        )));
        tasks.push(tokio::spawn(watch_images(worker.clone(), drained.clone())));
        tasks.push(tokio::spawn(consumer::listen_for_cancels(
            worker.clone(),
            drained,
        )));
    }
    Ok(Services {
        heartbeat,
        stop_intake,
        stop_after_drain,
        tasks,
    })
}

/// Docker, with this node's leftovers removed and the languages' images looked for. A missing
/// image leaves its language unavailable here until it is built (see `watch_images`).
async fn worker_context(ctx: &Arc<NodeContext>) -> Result<WorkerContext, SandboxError> {
    let sandbox = Sandbox::connect(ctx.node_id(), &ctx.config.docker).await?;
    let installed = Installed::default();
    installed.refresh(&sandbox, &ctx.languages).await?;
    let missing = installed.missing(&ctx.languages);
    if !missing.is_empty() {
        tracing::warn!(
            languages = ?missing,
            "these languages have no image yet and are not served here until it is built \
             (scripts/setup.sh --languages all builds them; this node looks again every {}s)",
            images::LOOK_AGAIN.as_secs()
        );
    }
    let leftovers = sandbox.remove_node_containers().await?;
    if leftovers > 0 {
        tracing::info!(
            leftovers,
            "removed containers left behind by an earlier run of this node"
        );
    }
    Ok(WorkerContext {
        node: ctx.clone(),
        sandbox,
        running: Default::default(),
        containers: Default::default(),
        installed,
        warmups: Default::default(),
    })
}

/// Looks for the missing images every few seconds until all are there or the node drains;
/// each image found makes its language served here (the heartbeat advertises it, its pool
/// fills).
async fn watch_images(worker: Arc<WorkerContext>, mut drained: watch::Receiver<bool>) {
    let languages = &worker.node.languages;
    while !worker.installed.missing(languages).is_empty() {
        tokio::select! {
            _ = drained.wait_for(|d| *d) => return,
            _ = tokio::time::sleep(images::LOOK_AGAIN) => {}
        }
        match worker.installed.refresh(&worker.sandbox, languages).await {
            Ok(found) if !found.is_empty() => {
                tracing::info!(languages = ?found, "images found: these languages are served now")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not look for the missing images"),
        }
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
