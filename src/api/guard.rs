//! Who may call the execution endpoints, and how often: API keys (`Authorization: Bearer`)
//! and a token bucket per key, or per client address when no keys are configured. The
//! address is the connection's peer; behind a reverse proxy listed in `api.trusted_proxies`,
//! the nearest address in `X-Forwarded-For` that is not itself a trusted proxy. Buckets that
//! have filled up again are forgotten, so that many clients cost memory only while active.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::server::Peer;
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
    trusted_proxies: Vec<IpAddr>,
    buckets: DashMap<String, Bucket>,
    /// When full buckets were last dropped.
    swept: Mutex<Instant>,
}

/// The key a request presents: `Authorization: Bearer <key>`, or Judge0's `X-Auth-Token`.
fn presented_key<'a>(authorization: Option<&'a str>, judge0: Option<&'a str>) -> Option<&'a str> {
    match authorization {
        Some(authorization) => authorization.strip_prefix("Bearer "),
        None => judge0,
    }
}

/// How often full buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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
            trusted_proxies: config.trusted_proxies.clone(),
            buckets: DashMap::new(),
            swept: Mutex::new(Instant::now()),
        }
    }

    /// A guard that asks no key, with the same rate limits (per client address): for an API
    /// whose clients cannot send one (`[piston] open`).
    pub fn open(config: &ApiConfig) -> Guard {
        Guard {
            keys: Vec::new(),
            ..Guard::new(config)
        }
    }

    /// Passes requests with a valid key (when keys are configured) and a token to spend.
    pub fn filter(
        self: Arc<Self>,
    ) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
        warp::header::optional::<String>("authorization")
            .and(warp::header::optional::<String>("x-auth-token"))
            .and(warp::header::optional::<String>("x-forwarded-for"))
            .and(warp::ext::optional::<Peer>())
            .and_then(
                move |auth: Option<String>,
                      judge0: Option<String>,
                      forwarded: Option<String>,
                      peer: Option<Peer>| {
                    let guard = self.clone();
                    async move {
                        let address =
                            peer.map(|Peer(p)| guard.address(p.ip(), forwarded.as_deref()));
                        let key = presented_key(auth.as_deref(), judge0.as_deref());
                        guard.admit(key, address, Instant::now())
                    }
                },
            )
            .untuple_one()
    }

    /// The client's address: the peer's, unless the peer is a trusted proxy that says whom it
    /// forwards for.
    fn address(&self, peer: IpAddr, forwarded: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        // Each proxy appends the address it got the request from: read from the right, past
        // our own proxies. A malformed entry ends the trust there.
        let chain = forwarded.unwrap_or_default().rsplit(',').map(str::trim);
        let mut client = peer;
        for hop in chain {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted_proxies.contains(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => break,
            }
        }
        client
    }

    /// Whether `given` is one of the configured API keys (none are, when none are set).
    pub fn is_key(&self, given: Option<&str>) -> bool {
        given.is_some_and(|given| {
            let given = given.trim();
            self.keys
                .iter()
                .any(|k| same(k.as_bytes(), given.as_bytes()))
        })
    }

    fn admit(
        &self,
        key: Option<&str>,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Rejection> {
        let client = self
            .client(key, address)
            .ok_or_else(|| warp::reject::custom(Unauthorized))?;
        self.take(client, now)
            .map_err(|wait| warp::reject::custom(RateLimited(wait)))
    }

    /// The key the request is counted under: its API key, or its address when no keys are set.
    fn client(&self, key: Option<&str>, address: Option<IpAddr>) -> Option<String> {
        if self.keys.is_empty() {
            return Some(address.map_or_else(|| "unknown".into(), |ip| ip.to_string()));
        }
        let given = key?.trim();
        self.keys
            .iter()
            .find(|k| same(k.as_bytes(), given.as_bytes()))
            .cloned()
    }

    /// Spends one token, or says how long until one is there.
    fn take(&self, client: String, now: Instant) -> Result<(), Duration> {
        self.sweep(now);
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

impl Guard {
    /// Drops the buckets that have refilled: a new bucket would be the same.
    fn sweep(&self, now: Instant) {
        {
            let Ok(mut swept) = self.swept.try_lock() else {
                return;
            };
            if now.saturating_duration_since(*swept) < SWEEP_EVERY {
                return;
            }
            *swept = now;
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
        });
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
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
            trusted_proxies: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
        })
    }

    #[test]
    fn only_configured_keys_pass_when_there_are_keys() {
        let g = guard(&["k1", "k2"], 1.0, 1);
        let key = |auth, judge0| g.client(presented_key(auth, judge0), None);
        assert_eq!(key(Some("Bearer k2"), None).as_deref(), Some("k2"));
        assert_eq!(key(Some("Bearer k3"), None), None);
        assert_eq!(key(Some("k1"), None), None);
        assert_eq!(key(None, Some("k1")).as_deref(), Some("k1"));
        assert_eq!(key(None, None), None);
        let open = guard(&[], 1.0, 1);
        assert_eq!(
            open.client(None, Some("127.0.0.1".parse().unwrap()))
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

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let g = guard(&[], 1.0, 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let spoofed = Some("1.2.3.4");
        assert_eq!(g.address(ip("127.0.0.5"), spoofed), ip("127.0.0.5"));
        assert_eq!(g.address(ip("10.0.0.1"), spoofed), ip("1.2.3.4"));
        assert_eq!(
            g.address(ip("10.0.0.1"), Some("9.9.9.9, 1.2.3.4, 10.0.0.2")),
            ip("1.2.3.4"),
            "the nearest untrusted hop, not what the client wrote first"
        );
        assert_eq!(g.address(ip("10.0.0.1"), Some("junk")), ip("10.0.0.1"));
        assert_eq!(g.address(ip("10.0.0.1"), None), ip("10.0.0.1"));
    }

    #[test]
    fn buckets_that_refilled_are_forgotten() {
        let g = guard(&[], 10.0, 2);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(g.take(format!("c{i}"), t0).is_ok());
        }
        assert_eq!(g.tracked(), 1000);
        // A second later every bucket has refilled; the next request sweeps them.
        assert!(g.take("late".into(), t0 + Duration::from_secs(2)).is_ok());
        assert_eq!(g.tracked(), 1);
    }
}
