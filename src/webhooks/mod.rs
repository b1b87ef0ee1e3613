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

use std::sync::Arc;

use crate::model::ExecutionRecord;

/// What one delivery sends: its method and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub method: http::Method,
    pub body: Vec<u8>,
}

impl Payload {
    /// `value` as JSON, POSTed: how CodeBeaker's own records and batches go.
    pub fn post(value: &impl serde::Serialize) -> Payload {
        Payload {
            method: http::Method::POST,
            body: serde_json::to_vec(value).expect("records serialise"),
        }
    }
}

/// How a record goes to its own callback, when the API its request came through has a shape
/// of its own (Judge0 PUTs its submission); `None`, and it is POSTed as the record. The node
/// wires it in, so that this module knows no adapter.
pub type Shape = Arc<dyn Fn(&ExecutionRecord) -> Option<Payload> + Send + Sync>;
