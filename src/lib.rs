//! CodeBeaker runs untrusted code in hardened, throw-away Docker containers.
//!
//! Map of the crate, in the order a request travels:
//! - [`api`]: warp routes (`POST /execute`, `GET /languages`, health, metrics) and the one place
//!   where errors become HTTP responses.
//! - [`model`]: the request, the execution record and its statuses; request validation.
//! - [`languages`]: language definitions, loaded from `languages.toml` (data, not code).
//! - [`actors`]: the per-node actor tree: Supervisor, WorkerActor, RuntimeActor, MetricsActor.
//! - [`sandbox`]: Docker through bollard: hardened container spec, limits, output capture.
//! - [`config`]: typed configuration, loaded once (file, then `CODEBEAKER_*` environment).
//! - [`node`]: wires the pieces into a running node and shuts it down cleanly.
//! - [`telemetry`]: tracing setup (pretty on a terminal, JSON otherwise).
//! - [`client`], [`bench`]: a REST client for the CLI, and `codebeaker bench`.

pub mod actors;
pub mod api;
pub mod bench;
pub mod client;
pub mod config;
pub mod languages;
pub mod model;
pub mod node;
pub mod sandbox;
pub mod telemetry;
