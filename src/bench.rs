//! `codebeaker bench`: latency of a running server beside two baselines measured in the same
//! run: a bare interpreter process on the host, and `docker run --rm` with the same hardening
//! the node applies.

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::languages::Languages;
use crate::model::{ExecuteRequest, Status};
use crate::sandbox::container::{self, Shape};
use crate::sandbox::limits::{Limits, Policy};

#[derive(Debug, Serialize)]
pub struct Measurement {
    pub name: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    /// Runs per second, for workloads timed as a whole.
    pub per_second: Option<f64>,
    /// p50 of this workload divided by the p50 of `docker run --rm`.
    pub vs_docker_run: Option<f64>,
    /// CPU the whole machine spent per job while the workload ran (node, Docker, the
    /// programs and this client together), for workloads that measure it.
    pub cpu_ms_per_job: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("a benchmark job ended {0:?} instead of completed")]
    JobFailed(Status),
    #[error("a request through the Judge0, Piston or MCP API did not run to a clean exit: {0}")]
    Adapter(String),
    #[error("baseline `{command}` failed: {detail}")]
    Baseline { command: String, detail: String },
    #[error("a submitting client stopped: {0}")]
    Submitter(String),
    #[error(transparent)]
    Credentials(#[from] crate::queue::embedded::EmbeddedError),
}

pub struct BenchOptions {
    pub url: String,
    /// Another server to measure in the same run (an older build, another deployment).
    pub baseline_url: Option<String>,
    pub runs: usize,
    /// Runs of each language's hello-world example (0: skip that workload).
    pub per_language: usize,
    /// Also measure request/reply over NATS at this URL.
    pub nats_url: Option<String>,
    /// Also run the sequential workload with this pause between jobs (time for a pool to
    /// refill, as between a person's runs).
    pub pause: Option<Duration>,
    /// `print(1)` jobs submitted asynchronously by `clients` concurrent clients (0: skip).
    pub async_jobs: usize,
    pub clients: usize,
    /// A C++ program with this many test cases in one request, beside as many separate
    /// requests (0: skip).
    pub test_cases: usize,
}

pub async fn run(options: &BenchOptions, config: &Config) -> Result<Vec<Measurement>, BenchError> {
    let docker_args = docker_run_args(config);
    let bare = time_runs(options.runs, || command(host_python(), &["-c", "print(1)"])).await?;
    let docker = time_runs(options.runs, || command("docker", &docker_args)).await?;
    let mut results = vec![
        summarize("bare python3 process", bare),
        summarize("docker run --rm (same hardening)", docker),
    ];
    if let Some(baseline) = &options.baseline_url {
        let (latency, _) = sync_latency(baseline, options.runs, Duration::ZERO).await?;
        results.push(summarize(
            &format!("POST /execute print(1) @ {baseline}"),
            latency,
        ));
    }
    let cpu_before = machine_cpu();
    let (latency, breakdown) = sync_latency(&options.url, options.runs, Duration::ZERO).await?;
    let mut back_to_back = summarize("POST /execute print(1), back to back", latency);
    back_to_back.cpu_ms_per_job = cpu_per_job(cpu_before, back_to_back.runs);
    results.push(back_to_back);
    results.extend(breakdown.rows());
    if let Some(pause) = options.pause {
        let (latency, breakdown) = sync_latency(&options.url, options.runs, pause).await?;
        let name = format!("POST /execute print(1), {} ms apart", pause.as_millis());
        results.push(summarize(&name, latency));
        results.extend(breakdown.rows());
    }
    if let Some(nats) = &options.nats_url {
        let credentials = crate::queue::embedded::with_kept_credentials(&config.nats)?;
        let client = Client::nats(nats, &credentials).await?;
        let request = ExecuteRequest::new("python", "print(1)");
        let timed = time_runs(options.runs, || async {
            completed(&client, &request).await.map(drop)
        })
        .await?;
        results.push(summarize(
            "NATS codebeaker.execute print(1), back to back",
            timed,
        ));
    }
    results.push(record_reads(&options.url, options.runs).await?);
    results.extend(adapter_latencies(&options.url, options.runs).await?);
    if options.per_language > 0 {
        results.extend(languages(&options.url, options.per_language).await?);
    }
    if options.async_jobs > 0 {
        results.push(throughput(&options.url, options.async_jobs, options.clients).await?);
    }
    if options.test_cases > 0 {
        results.extend(compile_once(&options.url, options.runs, options.test_cases).await?);
    }
    let docker_p50 = results[1].p50_ms;
    for m in &mut results {
        m.vs_docker_run = Some(m.p50_ms / docker_p50);
    }
    Ok(results)
}

/// Where a synchronous job's time went, from its record: in the queue (created to started),
/// in the worker around the program (claim, container, record), the program in its
/// container, and the rest (HTTP, validation, enqueue, the API learning of the final record).
#[derive(Default)]
struct Breakdown {
    /// The first run is time_runs' warm-up, not a sample.
    warmed_up: bool,
    /// Each request's own time (a pause before it not included).
    total: Vec<Duration>,
    queue: Vec<Duration>,
    worker: Vec<Duration>,
    program: Vec<Duration>,
    api: Vec<Duration>,
}

impl Breakdown {
    fn add(&mut self, total: Duration, record: &crate::model::ExecutionRecord) {
        if !std::mem::replace(&mut self.warmed_up, true) {
            return;
        }
        type At = chrono::DateTime<chrono::Utc>;
        let span = |from: At, to: Option<At>| {
            to.and_then(|to| (to - from).to_std().ok())
                .unwrap_or_default()
        };
        let queued = span(record.created_at, record.started_at);
        let in_worker = record
            .started_at
            .map(|s| span(s, record.finished_at))
            .unwrap_or_default();
        let program = Duration::from_millis(record.duration_ms.unwrap_or(0));
        self.total.push(total);
        self.queue.push(queued);
        self.worker.push(in_worker.saturating_sub(program));
        self.program.push(program);
        self.api.push(total.saturating_sub(queued + in_worker));
    }

    fn rows(self) -> Vec<Measurement> {
        [
            ("  of which enqueue-to-start (records)", self.queue),
            ("  of which worker: claim, container, record", self.worker),
            ("  of which the program in its container", self.program),
            ("  of which API: HTTP, enqueue, result", self.api),
        ]
        .into_iter()
        .map(|(name, mut samples)| {
            samples.sort();
            summarize(
                name,
                Timed {
                    samples,
                    total: None,
                },
            )
        })
        .collect()
    }
}

/// Sequential synchronous `print(1)` jobs, `pause` apart: request latency and its breakdown.
async fn sync_latency(
    url: &str,
    runs: usize,
    pause: Duration,
) -> Result<(Timed, Breakdown), BenchError> {
    let client = Client::rest(url);
    let request = ExecuteRequest::new("python", "print(1)");
    let breakdown = std::sync::Mutex::new(Breakdown::default());
    let latency = time_runs(runs, || async {
        tokio::time::sleep(pause).await;
        let start = Instant::now();
        let record = completed(&client, &request).await?;
        breakdown
            .lock()
            .expect("not poisoned")
            .add(start.elapsed(), &record);
        Ok(())
    })
    .await?;
    let breakdown = breakdown.into_inner().expect("not poisoned");
    // With pauses, runs per second would count the pauses: only the requests are timed.
    let latency = match pause.is_zero() {
        true => latency,
        false => {
            let mut samples = breakdown.total.clone();
            samples.sort();
            Timed {
                samples,
                total: None,
            }
        }
    };
    Ok((latency, breakdown))
}

/// `GET /execution/{id}` of one finished record, `runs` times.
async fn record_reads(url: &str, runs: usize) -> Result<Measurement, BenchError> {
    let record = completed(
        &Client::rest(url),
        &ExecuteRequest::new("python", "print(1)"),
    )
    .await?;
    let (http, path) = (
        reqwest::Client::new(),
        format!("{url}/execution/{}", record.execution_id),
    );
    let timed = time_runs(runs, || async {
        rest::<serde_json::Value>(http.get(&path)).await.map(drop)
    })
    .await?;
    Ok(summarize("GET /execution/{id}, a finished record", timed))
}

/// Whether an adapter's answer is a clean exit.
type Ran = fn(&Value) -> bool;

/// The same `print(1)` through the Judge0, Piston and MCP adapters, each back to back: what
/// each adapter costs over `POST /execute`. MCP's is one stateless `tools/call` POST, as a
/// client with its session set up sends it.
async fn adapter_latencies(url: &str, runs: usize) -> Result<Vec<Measurement>, BenchError> {
    let http = reqwest::Client::new();
    let judge0 = http
        .post(format!("{url}/judge0/submissions?wait=true"))
        .json(&json!({"source_code": "print(1)", "language_id": 71}));
    let piston = http.post(format!("{url}/api/v2/execute")).json(&json!({
        "language": "python", "version": "*", "files": [{"content": "print(1)"}]}));
    let mcp = http
        .post(format!("{url}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "execute", "arguments": {"language": "python", "code": "print(1)"}}}),
        );
    let adapters: [(&str, reqwest::RequestBuilder, Ran); 3] = [
        ("POST /judge0/submissions?wait=true print(1)", judge0, |a| {
            a["status"]["id"] == 3
        }),
        ("POST /api/v2/execute print(1) (Piston)", piston, |a| {
            a["run"]["code"] == 0
        }),
        ("POST /mcp tools/call execute print(1)", mcp, |a| {
            a["result"]["structuredContent"]["exit_code"] == 0
        }),
    ];
    let mut results = Vec::new();
    for (name, request, ran) in adapters {
        let timed = time_runs(runs, || async {
            let request = request.try_clone().expect("a JSON request can be cloned");
            let answer: Value = rest(request).await?;
            match ran(&answer) {
                true => Ok(()),
                false => Err(BenchError::Adapter(answer.to_string())),
            }
        })
        .await?;
        results.push(summarize(name, timed));
    }
    Ok(results)
}

/// Each language's hello world `per_language` times, then all of them mixed round robin.
async fn languages(url: &str, per_language: usize) -> Result<Vec<Measurement>, BenchError> {
    let client = Client::rest(url);
    let requests: Vec<(String, ExecuteRequest)> = client
        .languages()
        .await?
        .into_iter()
        .map(|l| (l.name.clone(), ExecuteRequest::new(&l.name, &l.example)))
        .collect();
    let mut results = Vec::new();
    for (name, request) in &requests {
        let timed = time_runs(per_language, || async {
            completed(&client, request).await.map(drop)
        })
        .await?;
        results.push(summarize(&format!("hello world: {name}"), timed));
    }
    let mut next = requests.iter().cycle();
    let timed = time_runs(per_language * requests.len(), || {
        let (_, request) = next.next().expect("cycle");
        let client = &client;
        async move { completed(client, request).await.map(drop) }
    })
    .await?;
    results.push(summarize(
        "hello worlds of every language, round robin",
        timed,
    ));
    Ok(results)
}

/// `jobs` async `print(1)` submissions from `clients` concurrent clients; then every record
/// is read until final. Per job: its time in the system (created to finished); jobs per second:
/// all jobs over the span from the first creation to the last finish.
async fn throughput(url: &str, jobs: usize, clients: usize) -> Result<Measurement, BenchError> {
    let http = reqwest::Client::new();
    let cpu_before = machine_cpu();
    let submitters = (0..clients).map(|c| {
        let (http, url) = (http.clone(), url.to_string());
        let share = jobs / clients + usize::from(c < jobs % clients);
        tokio::spawn(async move {
            let mut ids = Vec::with_capacity(share);
            for _ in 0..share {
                let body = ExecuteRequest::new("python", "print(1)");
                let accepted: serde_json::Value =
                    rest(http.post(format!("{url}/execute/async")).json(&body)).await?;
                ids.push(
                    accepted["execution_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            Ok::<_, BenchError>(ids)
        })
    });
    let mut ids = Vec::with_capacity(jobs);
    for submitter in futures::future::join_all(submitters).await {
        ids.extend(submitter.map_err(|e| BenchError::Submitter(e.to_string()))??);
    }
    let mut records = Vec::with_capacity(jobs);
    for id in ids {
        loop {
            let record: crate::model::ExecutionRecord =
                rest(http.get(format!("{url}/execution/{id}"))).await?;
            match record.status {
                Status::Completed => break records.push(record),
                s if s.is_final() => return Err(BenchError::JobFailed(s)),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let first = records.iter().map(|r| r.created_at).min();
    let last = records.iter().filter_map(|r| r.finished_at).max();
    let span = match (first, last) {
        (Some(first), Some(last)) => (last - first).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let mut samples: Vec<Duration> = records
        .iter()
        .filter_map(|r| (r.finished_at? - r.created_at).to_std().ok())
        .collect();
    samples.sort();
    let name = format!("async print(1): {jobs} jobs from {clients} clients, created to finished");
    let mut measurement = summarize(
        &name,
        Timed {
            samples,
            total: None,
        },
    );
    measurement.per_second = Some(jobs as f64 / span.as_secs_f64().max(1e-9));
    measurement.cpu_ms_per_job = cpu_per_job(cpu_before, jobs);
    Ok(measurement)
}

/// Machine CPU since `before`, per job.
fn cpu_per_job(before: Option<Duration>, jobs: usize) -> Option<f64> {
    let spent = machine_cpu()?.saturating_sub(before?);
    Some(ms(spent) / jobs.max(1) as f64)
}

/// CPU time the machine has spent busy so far (all cores, from /proc/stat); None off Linux.
fn machine_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: u64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(Duration::from_millis(busy * 1000 / USER_HZ))
}

/// The unit of /proc/stat's counters, fixed by the kernel's ABI on x86_64.
const USER_HZ: u64 = 100;

/// One REST call; a 429 is waited out as its Retry-After says, as a polite client would.
async fn rest<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, BenchError> {
    let response = loop {
        let attempt = request
            .try_clone()
            .expect("no streaming bodies")
            .send()
            .await;
        match attempt {
            Ok(r) if r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<f64>().ok())
                    .unwrap_or(0.1);
                tokio::time::sleep(Duration::from_secs_f64(wait.clamp(0.01, 5.0))).await;
            }
            other => break other,
        }
    };
    let response = response.and_then(|r| r.error_for_status());
    let answer = match response {
        Ok(response) => response.json().await,
        Err(e) => Err(e),
    };
    answer.map_err(|e| {
        BenchError::Client(ClientError::Unreachable {
            target: "the server".into(),
            reason: e.to_string(),
        })
    })
}

const SUM: &str = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << '\\n'; }\n";

/// What compiling once saves: a C++ program with `cases` test cases in one request, beside
/// the same inputs as `cases` separate requests one after another (each compiling again).
/// Each is timed as a whole, over a tenth of `runs` (at least 3).
async fn compile_once(
    url: &str,
    runs: usize,
    cases: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let client = Client::rest(url);
    let inputs: Vec<String> = (0..cases).map(|i| format!("{i} {i}")).collect();
    let mut with_tests = ExecuteRequest::new("cpp", SUM);
    with_tests.tests = inputs
        .iter()
        .enumerate()
        .map(|(i, stdin)| crate::judge::TestCase {
            stdin: stdin.clone(),
            expected_output: (2 * i).to_string(),
            args: None,
            timeout: None,
        })
        .collect();
    let runs = (runs / 10).max(3);
    let one = time_runs(runs, || async {
        let record = completed(&client, &with_tests).await?;
        match record.verdict {
            Some(crate::judge::Verdict::Accepted) => Ok(()),
            _ => Err(BenchError::JobFailed(record.status)),
        }
    })
    .await?;
    let separate = time_runs(runs, || async {
        for stdin in &inputs {
            let mut request = ExecuteRequest::new("cpp", SUM);
            request.stdin = stdin.clone();
            completed(&client, &request).await?;
        }
        Ok(())
    })
    .await?;
    Ok(vec![
        summarize(&format!("C++, {cases} test cases in one request"), one),
        summarize(
            &format!("C++, the same {cases} inputs as separate requests"),
            separate,
        ),
    ])
}

/// Runs a request and insists that it completed.
async fn completed(
    client: &Client,
    request: &ExecuteRequest,
) -> Result<crate::model::ExecutionRecord, BenchError> {
    let record = client.execute(request).await?;
    match record.status {
        Status::Completed => Ok(record),
        other => Err(BenchError::JobFailed(other)),
    }
}

/// Sorted samples and, for timed runs, the wall time they took together.
pub struct Timed {
    samples: Vec<Duration>,
    total: Option<Duration>,
}

/// Runs `op` `runs` times in sequence, after one unmeasured warm-up run.
async fn time_runs<F, Fut>(runs: usize, mut op: F) -> Result<Timed, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), BenchError>>,
{
    op().await?;
    let mut samples = Vec::with_capacity(runs);
    let total = Instant::now();
    for _ in 0..runs {
        let start = Instant::now();
        op().await?;
        samples.push(start.elapsed());
    }
    let total = Some(total.elapsed());
    samples.sort();
    Ok(Timed { samples, total })
}

fn summarize(name: &str, timed: Timed) -> Measurement {
    eprintln!("bench: {name}: done");
    let s = &timed.samples;
    Measurement {
        name: name.to_string(),
        runs: s.len(),
        p50_ms: ms(percentile(s, 0.50)),
        p90_ms: ms(percentile(s, 0.90)),
        p99_ms: ms(percentile(s, 0.99)),
        per_second: timed
            .total
            .map(|t| s.len() as f64 / t.as_secs_f64().max(1e-9)),
        vs_docker_run: None,
        cpu_ms_per_job: None,
    }
}

async fn command(program: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Result<(), BenchError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    let failed = |detail: String| BenchError::Baseline {
        command: program.to_string(),
        detail,
    };
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(failed(String::from_utf8_lossy(&out.stderr).into_owned())),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The system interpreter: a version manager's shim on PATH (pyenv) would add its own start-up.
fn host_python() -> &'static str {
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// The `docker run` command line equivalent to the node's cell for a python job, derived
/// from the same spec so that the baseline cannot drift from what the node does; the program
/// runs as the container's main process, without the executor.
fn docker_run_args(config: &Config) -> Vec<String> {
    let languages = Languages::load(config.languages_file.as_deref()).expect("languages load");
    let language = languages.get("python").expect("python is defined");
    let limits = Limits::resolve(
        &config.limits,
        &language.limits,
        &Default::default(),
        Policy::Refuse,
    )
    .expect("defaults are valid");
    let shape = Shape {
        image: language.image.clone(),
        runtime: language
            .runtime_or(config.docker.runtime.as_deref())
            .map(str::to_string),
        memory: limits.memory,
        pids: limits.pids,
        cpus: limits.cpus,
        tmpfs: limits.tmpfs,
        open_files: limits.open_files,
    };
    let profile = std::env::temp_dir().join("codebeaker-bench-seccomp.json");
    container::docker_run_args(
        &shape,
        &config.docker.user,
        &profile,
        &["python3", "-c", "print(1)"],
    )
    .expect("the seccomp profile can be written to the temp dir")
}

/// Prints the measurements as a table.
pub fn print_table(results: &[Measurement]) {
    println!(
        "{:<56} {:>5} {:>9} {:>9} {:>9} {:>8} {:>14} {:>11}",
        "workload", "runs", "p50 ms", "p90 ms", "p99 ms", "per s", "p50/docker run", "CPU ms/job"
    );
    for m in results {
        println!(
            "{:<56} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>14.2} {:>11}",
            m.name,
            m.runs,
            m.p50_ms,
            m.p90_ms,
            m.p99_ms,
            m.per_second.map_or("-".into(), |r| format!("{r:.1}")),
            m.vs_docker_run.unwrap_or(f64::NAN),
            m.cpu_ms_per_job.map_or("-".into(), |c| format!("{c:.1}"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&samples[..1], 0.9), Duration::from_millis(1));
    }

    #[test]
    fn the_docker_baseline_carries_the_hardening() {
        let args = docker_run_args(&Config::default()).join(" ");
        for expected in [
            "--network=none",
            "--read-only=true",
            "--cap-drop=ALL",
            "--security-opt=no-new-privileges",
            "--pids-limit=66",
            "--ulimit=nofile=320:320",
            "--user=10001:10001",
            "--security-opt=seccomp=/",
            "--entrypoint=python3 codebeaker/python:latest -c print(1)",
        ] {
            assert!(args.contains(expected), "missing {expected} in {args}");
        }
    }
}
