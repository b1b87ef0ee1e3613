//! What logging and metrics cost on the request path. One trivial route is served twice in
//! this process: bare (warp's own server) and behind CodeBeaker's server (request id, span,
//! a JSON log line written to a file, HTTP metrics through the MetricsActor, two response
//! headers). Both are measured in turns over loopback HTTP with keep-alive, so the difference
//! of their medians is what observation adds to every request.
//!
//! `cargo bench --bench observability` (the number of rounds may follow: `-- 40`).

use std::time::{Duration, Instant};

use codebeaker::actors::metrics::MetricsActor;
use codebeaker::actors::names;
use codebeaker::api::server;
use codebeaker::bench::percentile;
use ractor::Actor;
use tokio::net::TcpListener;
use warp::Filter;

const NODE: &str = "bench";
const PER_ROUND: usize = 500;

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let log = tempfile::NamedTempFile::new().unwrap();
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::sync::Mutex::new(log.reopen().unwrap()))
        .init();
    Actor::spawn(Some(names::metrics(NODE)), MetricsActor, "api")
        .await
        .expect("metrics actor starts");

    let route = warp::any().map(|| "{}");
    let bare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}", bare.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(bare).run());
    let observed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let observed_url = format!("http://{}", observed.local_addr().unwrap());
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let observed = server::Listener {
        socket: observed,
        prefix: None,
    };
    tokio::spawn(server::serve(observed, route, NODE.into(), stop));

    let http = reqwest::Client::new();
    let (mut bare_samples, mut observed_samples) = (Vec::new(), Vec::new());
    for round in 0..=rounds {
        let b = requests(&http, &bare_url).await;
        let o = requests(&http, &observed_url).await;
        // Round 0 warms up connections and allocations.
        if round > 0 {
            bare_samples.extend(b);
            observed_samples.extend(o);
        }
    }
    bare_samples.sort();
    observed_samples.sort();
    let log_lines = std::fs::read_to_string(log.path()).unwrap().lines().count();

    println!(
        "{:<40} {:>7} {:>9} {:>9} {:>9}",
        "server", "requests", "p50 µs", "p90 µs", "p99 µs"
    );
    for (name, s) in [
        ("bare warp", &bare_samples),
        ("observed (ids, log, metrics)", &observed_samples),
    ] {
        println!(
            "{:<40} {:>7} {:>9.1} {:>9.1} {:>9.1}",
            name,
            s.len(),
            us(percentile(s, 0.5)),
            us(percentile(s, 0.9)),
            us(percentile(s, 0.99))
        );
    }
    let added = us(percentile(&observed_samples, 0.5)) - us(percentile(&bare_samples, 0.5));
    println!(
        "observation adds {added:.1} µs per request at the median ({:.2}× bare); {log_lines} log lines written",
        us(percentile(&observed_samples, 0.5)) / us(percentile(&bare_samples, 0.5))
    );
}

/// One round of sequential GETs; the path has an id, as `/execution/{id}` does.
async fn requests(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(PER_ROUND);
    for _ in 0..PER_ROUND {
        let path = format!("{url}/execution/{}", uuid::Uuid::new_v4());
        let start = Instant::now();
        let response = http.get(path).send().await.expect("request");
        response.bytes().await.expect("body");
        samples.push(start.elapsed());
    }
    samples
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
