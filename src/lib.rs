//! CodeBeaker runs untrusted code in hardened, throw-away Docker containers.
//!
//! Map of the crate, in the order a request travels:
//! - [`api`]: the REST adapter: the HTTP accept loop that gives each request its id, span and
//!   metrics; the one route table; warp handlers; where errors become HTTP responses.
//! - [`nats_api`]: the NATS request/reply adapter (`codebeaker.execute`, ...).
//! - [`mcp`]: the MCP adapter: tools for AI agents, over stdio (`codebeaker mcp`) and
//!   streamable HTTP (`/mcp`, mounted by `api`).
//! - [`app`]: the application layer every adapter calls (submit, wait, get, cancel, ...), its
//!   errors and the one table mapping them to HTTP and NATS answers.
//! - [`model`]: the request, the execution record and its statuses; request validation.
//! - [`judge`]: test cases: output comparison modes and verdicts.
//! - [`live`]: a running execution's events (output, usage) and an interactive one's input.
//! - [`languages`]: language definitions, loaded from `languages.toml` (data, not code).
//! - [`queue`]: NATS JetStream between API and workers: job stream, records in KV, node
//!   heartbeats, the rescue of jobs the stream lost, the pull loop, the embedded nats-server.
//! - [`webhooks`]: signed POSTs of final records to `callback_url`s, retried durably.
//! - [`actors`]: the per-node actor tree: Supervisor (health checks, autoscaling), WorkerActor,
//!   RuntimeActor (warm pool), MetricsActor.
//! - [`sandbox`]: Docker through bollard: hardened container spec, limits, output capture,
//!   which languages' images the node has.
//! - [`config`]: typed configuration, loaded once (file, then `CODEBEAKER_*` environment).
//! - [`node`]: wires the pieces into a running node and shuts it down cleanly.
//! - [`telemetry`]: tracing setup (pretty on a terminal, JSON otherwise).
//! - [`cli`]: the command line (`main.rs` only calls it); [`client`]: a REST and NATS client
//!   for it and for any Rust program; [`bench`]: `codebeaker bench`.

pub mod actors;
pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod judge;
pub mod languages;
pub mod live;
pub mod mcp;
pub mod model;
pub mod nats_api;
pub mod node;
pub mod queue;
pub mod sandbox;
pub mod telemetry;
pub mod webhooks;
