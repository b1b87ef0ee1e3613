//! Who may call the execution endpoints, and how often: API keys (`Authorization: Bearer`)
//! and a token bucket per key, or per client address when no keys are configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use warp::{Filter, Rejection};

use crate::config::ApiConfig;

/// No valid API key.
#[derive(Debug)]
pub struct Unauthorized;
impl warp::reject::Reject for Unauthorized {}

/// Over the rate limit; try again after the given time.
#[derive(Debug)]
pub struct RateLimited(pub Duration);
impl warp::reject::Reject for RateLimited {}

pub struct Guard {
    keys: Vec<String>,
    rate: f64,
    burst: f64,
    buckets: DashMap<String, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Guard {
    pub fn new(config: &ApiConfig) -> Guard {
        Guard {
            keys: config.keys.clone(),
            rate: config.rate_per_second,
            burst: f64::from(config.burst.max(1)),
            buckets: DashMap::new(),
        }
    }

    /// Passes requests with a valid key (when keys are configured) and a token to spend.
    pub fn filter(
        self: Arc<Self>,
    ) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
        warp::header::optional::<String>("authorization")
            .and(warp::addr::remote())
            .and_then(move |auth: Option<String>, peer: Option<SocketAddr>| {
                let guard = self.clone();
                async move { guard.admit(auth.as_deref(), peer, Instant::now()) }
            })
            .untuple_one()
    }

    fn admit(
        &self,
        authorization: Option<&str>,
        peer: Option<SocketAddr>,
        now: Instant,
    ) -> Result<(), Rejection> {
        let client = self
            .client(authorization, peer)
            .ok_or_else(|| warp::reject::custom(Unauthorized))?;
        self.take(client, now)
            .map_err(|wait| warp::reject::custom(RateLimited(wait)))
    }

    /// The key the request is counted under: its API key, or its address when no keys are set.
    fn client(&self, authorization: Option<&str>, peer: Option<SocketAddr>) -> Option<String> {
        if self.keys.is_empty() {
            return Some(peer.map_or_else(|| "unknown".into(), |p| p.ip().to_string()));
        }
        let given = authorization?.strip_prefix("Bearer ")?.trim();
        self.keys
            .iter()
            .find(|k| same(k.as_bytes(), given.as_bytes()))
            .cloned()
    }

    /// Spends one token, or says how long until one is there.
    fn take(&self, client: String, now: Instant) -> Result<(), Duration> {
        let mut bucket = self.buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// Compares keys in time that depends only on their length.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(keys: &[&str], rate: f64, burst: u32) -> Guard {
        Guard::new(&ApiConfig {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            rate_per_second: rate,
            burst,
            cors_origins: vec![],
        })
    }

    #[test]
    fn only_configured_keys_pass_when_there_are_keys() {
        let g = guard(&["k1", "k2"], 1.0, 1);
        assert_eq!(g.client(Some("Bearer k2"), None).as_deref(), Some("k2"));
        assert_eq!(g.client(Some("Bearer k3"), None), None);
        assert_eq!(g.client(Some("k1"), None), None);
        assert_eq!(g.client(None, None), None);
        let open = guard(&[], 1.0, 1);
        assert_eq!(
            open.client(None, Some("127.0.0.1:9".parse().unwrap()))
                .as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let g = guard(&[], 2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(g.take("c".into(), t0).is_ok());
        }
        let wait = g.take("c".into(), t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(g.take("other".into(), t0).is_ok(), "buckets are per client");
        assert!(g.take("c".into(), t0 + Duration::from_millis(500)).is_ok());
        assert!(g.take("c".into(), t0 + Duration::from_millis(600)).is_err());
    }
}
