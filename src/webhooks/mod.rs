//! Webhooks: a final record (or a batch whose executions are all final) is POSTed to the
//! `callback_url` its request named, signed, and tried again with backoff until it is
//! taken or `webhooks.max_attempts` is spent.
//!
//! - [`policy`]: which URLs and addresses may be called (an allow-list, public addresses only
//!   unless enabled).
//! - [`signature`]: the `X-CodeBeaker-Signature` header.
//! - [`deliver`]: the loop every node with webhooks on runs: it pulls record writes from the
//!   durable `webhooks` consumer (`queue::callbacks`), so that a delivery survives any node.

pub mod deliver;
pub mod policy;
pub mod signature;

pub use deliver::run;
