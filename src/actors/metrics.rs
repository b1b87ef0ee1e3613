//! MetricsActor: owns the Prometheus registry. Others send it facts; `/metrics` asks it to render.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::model::{Priority, Status};

pub enum MetricsMsg {
    Executed {
        language: String,
        status: Status,
        duration: Duration,
    },
    Restarted(&'static str),
    /// The worker pool grew (`up`) or shrank (`down`).
    Scaled(&'static str),
    Workers {
        busy: usize,
        idle: usize,
    },
    /// A worker took a job this long after it was enqueued.
    QueueWait(Duration),
    /// Jobs not yet handed to any worker, by priority (cluster-wide, from consumer info).
    QueuePending(Vec<(Priority, u64)>),
    /// Containers a language's RuntimeActor holds ready.
    PoolSize {
        language: String,
        size: usize,
    },
    HttpStarted,
    HttpFinished {
        method: &'static str,
        route: &'static str,
        status: u16,
        duration: Duration,
    },
    Render(RpcReplyPort<String>),
}

pub struct Metrics {
    registry: Registry,
    executions: IntCounterVec,
    duration: HistogramVec,
    restarts: IntCounterVec,
    scaling: IntCounterVec,
    workers: IntGaugeVec,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    queue_wait: Histogram,
    queue_pending: IntGaugeVec,
    pool_size: IntGaugeVec,
}

impl Metrics {
    fn new(role: &str) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new_custom(Some("codebeaker".into()), None)?;
        let node_info = IntGaugeVec::new(
            Opts::new("node_info", "Always 1; labels say what this node is"),
            &["version", "role"],
        )?;
        node_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), role])
            .set(1);
        registry.register(Box::new(node_info))?;
        let queue_wait = Histogram::with_opts(
            HistogramOpts::new(
                "queue_wait_seconds",
                "Time from a job's enqueue to a worker taking it",
            )
            .buckets(vec![
                0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 120.0,
            ]),
        )?;
        registry.register(Box::new(queue_wait.clone()))?;
        let executions = IntCounterVec::new(
            Opts::new(
                "executions_total",
                "Executions finished, by language and status",
            ),
            &["language", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "execution_duration_seconds",
                "Wall-clock time of executions, container start to exit",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["language"],
        )?;
        let restarts = IntCounterVec::new(
            Opts::new(
                "actor_restarts_total",
                "Children the supervisor replaced, by actor kind",
            ),
            &["actor"],
        )?;
        let workers = IntGaugeVec::new(Opts::new("workers", "WorkerActors by state"), &["state"])?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request time, arrival to response",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["method", "route"],
        )?;
        let http_in_flight =
            IntGauge::new("http_requests_in_flight", "HTTP requests being answered")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(http_in_flight.clone()))?;
        registry.register(Box::new(executions.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        // Present from the start (at 0), so that dashboards and alerts see the series.
        for actor in ["metrics", "runtime", "worker"] {
            restarts.with_label_values(&[actor]);
        }
        registry.register(Box::new(restarts.clone()))?;
        let scaling = IntCounterVec::new(
            Opts::new(
                "scaling_events_total",
                "Times the supervisor grew or shrank the worker pool",
            ),
            &["direction"],
        )?;
        for direction in ["up", "down"] {
            scaling.with_label_values(&[direction]);
        }
        registry.register(Box::new(scaling.clone()))?;
        registry.register(Box::new(workers.clone()))?;
        let queue_pending = IntGaugeVec::new(
            Opts::new(
                "queue_pending",
                "Jobs in the stream not yet handed to a worker, by priority",
            ),
            &["priority"],
        )?;
        for priority in Priority::ALL {
            queue_pending.with_label_values(&[priority.as_str()]);
        }
        registry.register(Box::new(queue_pending.clone()))?;
        let pool_size = IntGaugeVec::new(
            Opts::new(
                "container_pool_size",
                "Containers ready for a job, by language",
            ),
            &["language"],
        )?;
        registry.register(Box::new(pool_size.clone()))?;
        Ok(Metrics {
            registry,
            executions,
            duration,
            restarts,
            scaling,
            workers,
            http_requests,
            http_duration,
            http_in_flight,
            queue_wait,
            queue_pending,
            pool_size,
        })
    }

    fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

pub struct MetricsActor;

impl Actor for MetricsActor {
    type Msg = MetricsMsg;
    type State = Metrics;
    /// The node's role, for `node_info`.
    type Arguments = &'static str;

    async fn pre_start(
        &self,
        _: ActorRef<MetricsMsg>,
        role: &'static str,
    ) -> Result<Metrics, ActorProcessingErr> {
        Ok(Metrics::new(role)?)
    }

    async fn handle(
        &self,
        _: ActorRef<MetricsMsg>,
        msg: MetricsMsg,
        m: &mut Metrics,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MetricsMsg::Executed {
                language,
                status,
                duration,
            } => {
                m.executions
                    .with_label_values(&[language.as_str(), status.as_str()])
                    .inc();
                m.duration
                    .with_label_values(&[language.as_str()])
                    .observe(duration.as_secs_f64());
            }
            MetricsMsg::Restarted(actor) => m.restarts.with_label_values(&[actor]).inc(),
            MetricsMsg::Scaled(direction) => m.scaling.with_label_values(&[direction]).inc(),
            MetricsMsg::Workers { busy, idle } => {
                m.workers.with_label_values(&["busy"]).set(busy as i64);
                m.workers.with_label_values(&["idle"]).set(idle as i64);
            }
            MetricsMsg::QueueWait(wait) => m.queue_wait.observe(wait.as_secs_f64()),
            MetricsMsg::QueuePending(pending) => {
                for (priority, n) in pending {
                    m.queue_pending
                        .with_label_values(&[priority.as_str()])
                        .set(n as i64);
                }
            }
            MetricsMsg::PoolSize { language, size } => {
                m.pool_size
                    .with_label_values(&[language.as_str()])
                    .set(size as i64);
            }
            MetricsMsg::HttpStarted => m.http_in_flight.inc(),
            MetricsMsg::HttpFinished {
                method,
                route,
                status,
                duration,
            } => {
                m.http_in_flight.dec();
                m.http_requests
                    .with_label_values(&[method, route, &status.to_string()])
                    .inc();
                m.http_duration
                    .with_label_values(&[method, route])
                    .observe(duration.as_secs_f64());
            }
            MetricsMsg::Render(reply) => {
                let _ = reply.send(m.render());
            }
        }
        Ok(())
    }
}
