//! The id that follows a request through logs, NATS headers and the worker that runs its job.

use std::sync::Arc;

/// The header that carries a request id, over HTTP and NATS alike.
pub const HEADER: &str = "x-request-id";

/// A request's id: the client's, when it is a sane token, else a new UUID.
#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id when it is sane, else a new UUID.
    pub fn from_client(id: Option<&str>) -> RequestId {
        match id.filter(|id| sane(id)) {
            Some(id) => RequestId(id.into()),
            None => RequestId(uuid::Uuid::new_v4().to_string().into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn only_sane_request_ids_are_echoed() {
        assert!(sane("req-42_a.b:c"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane(&"x".repeat(129)));
    }
}
