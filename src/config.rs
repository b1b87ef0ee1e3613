//! Typed configuration, loaded once at start-up.
//!
//! Sources, later ones winning: built-in defaults (a laptop), a TOML file (`--config`, or
//! `codebeaker.toml` when present), then `CODEBEAKER_*` environment variables where `__`
//! separates nested keys (`CODEBEAKER_LIMITS__MAX_TIMEOUT_SECS=60`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::sandbox::limits::ByteSize;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// Stable name of this node; containers are labelled with it so that a restarted node can
    /// remove what its previous run left behind. Defaults to the host name.
    pub node_id: String,
    /// WorkerActors at start, i.e. jobs run at once on this node; with autoscaling
    /// (`supervision.max_workers`), the floor the pool shrinks back to.
    pub workers: usize,
    /// On shutdown, how long running jobs may take to finish before they are handed back.
    pub drain_timeout_secs: u64,
    /// Language definitions; the built-in `languages.toml` when unset.
    pub languages_file: Option<PathBuf>,
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub log_format: LogFormat,
    pub docker: DockerConfig,
    pub limits: LimitsConfig,
    pub nats: NatsConfig,
    pub api: ApiConfig,
    pub supervision: SupervisionConfig,
    pub pool: PoolConfig,
    pub webhooks: WebhooksConfig,
    pub judge0: Judge0Config,
    pub piston: PistonConfig,
}

/// The Piston API at `/api/v2`. Piston has no authentication, and its clients (piston-client)
/// cannot send a key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PistonConfig {
    /// With `api.keys` set: `false` (the default), the Piston API wants a key like every
    /// route, so only clients that can send `Authorization: Bearer` work; `true`, it is open
    /// to anyone who can reach it (rate-limited per address), as Piston itself is.
    pub open: bool,
}

/// The Judge0 API: always at `/judge0` on `listen`; optionally also on a port of its own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Judge0Config {
    /// Serves the Judge0 API at the root of this address too (Judge0's own port is 2358), for
    /// clients that cannot take a base URL with a path.
    pub listen: Option<SocketAddr>,
}

/// Containers each language keeps started ahead of its jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Ready containers per language: at least `min`; up to `max` while jobs keep finding
    /// the pool empty.
    pub min: usize,
    pub max: usize,
    /// Per-language ranges, e.g. `[pool.languages.python] min = 2, max = 8`.
    pub languages: std::collections::HashMap<String, PoolRange>,
    /// Seconds without a job finding the pool empty before it shrinks by one.
    pub shrink_after_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PoolRange {
    pub min: usize,
    pub max: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min: 1,
            max: 4,
            languages: Default::default(),
            shrink_after_secs: 30,
        }
    }
}

impl PoolConfig {
    /// The range for `language`; max is never below min.
    pub fn range(&self, language: &str) -> PoolRange {
        let r = self.languages.get(language).copied().unwrap_or(PoolRange {
            min: self.min,
            max: self.max,
        });
        PoolRange {
            min: r.min,
            max: r.max.max(r.min),
        }
    }
}

/// How the Supervisor sizes and watches this node's workers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisionConfig {
    /// Most WorkerActors the pool grows to under a backlog. Unset: `workers`, a fixed pool.
    pub max_workers: Option<usize>,
    /// How often the Supervisor looks at the backlog, Docker and its children.
    pub check_interval_ms: u64,
    /// The pool shrinks only after this long with no backlog and at most half its workers busy.
    pub scale_down_after_secs: u64,
    /// A worker still on a job this long after the job's own deadline is killed and replaced.
    pub stuck_grace_secs: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            max_workers: None,
            check_interval_ms: 1000,
            scale_down_after_secs: 30,
            stuck_grace_secs: 30,
        }
    }
}

impl Config {
    /// The pool's range: `workers` (at least one) up to `max_workers`.
    pub fn worker_range(&self) -> (usize, usize) {
        let min = self.workers.max(1);
        (min, self.supervision.max_workers.unwrap_or(min).max(min))
    }
}

/// Who may use the REST API, and how fast.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// API keys, sent as `Authorization: Bearer <key>`. Empty: no key needed.
    pub keys: Vec<String>,
    /// Token bucket per key (per client address when no keys are set): requests per second...
    pub rate_per_second: f64,
    /// ...and how many may come at once.
    pub burst: u32,
    /// Origins allowed to call from a browser. Empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for per-address rate
    /// limits). Empty: the header is ignored, as anyone can write it.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            keys: Vec::new(),
            rate_per_second: 100.0,
            burst: 200,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Webhooks: where final records may be POSTed (`callback_url`), signed, and how hard to try.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Host names callbacks may go to: `hooks.example.com`, or `*.example.com` for its
    /// subdomains. Empty: webhooks are off, and a request naming a `callback_url` is refused.
    pub allow_hosts: Vec<String>,
    /// Signs every POST (`X-CodeBeaker-Signature`); required once `allow_hosts` is set.
    pub secret: Option<String>,
    /// Tries per callback before it is given up as `failed`.
    pub max_attempts: u32,
    /// The first retry's pause; each later one doubles, up to five minutes.
    pub first_retry_ms: u64,
    /// How long one POST may take.
    pub timeout_secs: u64,
    /// Call loopback, private, link-local and other non-public addresses too. Off: such an
    /// address is refused even when its name is allowed (metadata services, the LAN).
    pub allow_private_addresses: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_hosts: Vec::new(),
            secret: None,
            max_attempts: 5,
            first_retry_ms: 1000,
            timeout_secs: 10,
            allow_private_addresses: false,
        }
    }
}

impl WebhooksConfig {
    pub fn enabled(&self) -> bool {
        !self.allow_hosts.is_empty()
    }
}

/// NATS: where the job stream and records live, and how workers consume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server or cluster to use (`nats://127.0.0.1:4222`, comma-separated for several). When
    /// unset, `serve` starts its own `nats-server -js` child on `embedded_port`.
    pub url: Option<String>,
    pub embedded_port: u16,
    /// Where the embedded server keeps its JetStream files.
    pub data_dir: PathBuf,
    /// Replicas of the stream and KV buckets: 1, or 3 on a 3-node cluster.
    pub replicas: usize,
    /// How long a delivered job may go without an ack or progress before it is redelivered.
    pub ack_wait_secs: u64,
    /// Deliveries of one job before it is recorded as `internal_error`.
    pub max_deliver: i64,
    /// Unacknowledged jobs a consumer allows across all nodes.
    pub max_ack_pending: i64,
    /// Window in which a second publish with the same execution id is dropped.
    pub duplicate_window_secs: u64,
    /// How long execution records are kept.
    pub records_max_age_secs: u64,
    /// `codebeaker.execute` requests a node answers at once; more get a `503 unavailable`
    /// answer at once, so that a flood cannot grow the node's memory without bound.
    pub max_requests_in_flight: usize,
    /// Credentials, when the server asks for them: user and password, a token, or a creds
    /// file (NKey/JWT). At most one kind.
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub creds_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// OCI runtime for job containers (`runc` when unset; `runsc` for gVisor).
    pub runtime: Option<String>,
    /// Uid:gid the job runs as inside the container; images create this user.
    pub user: String,
    /// `cell` (default): a cell serves up to `cell_max_jobs` jobs, each in fresh namespaces.
    /// `container`: a cell serves one job and is removed. Languages may choose their own.
    pub backend: Backend,
    /// Jobs a cell serves before it is replaced.
    pub cell_max_jobs: u32,
}

/// Whether a cell serves many jobs or one; see [`DockerConfig::backend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Cell,
    Container,
}

/// Per-job limits: defaults a request gets when it names none, and the maxima it may ask for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Wall-clock seconds for the program.
    pub timeout: Bounded<f64>,
    /// CPU seconds for the program (RLIMIT_CPU): stops a spinning program before its wall time.
    pub cpu_time: Bounded<f64>,
    /// Memory, and memory+swap alike.
    pub memory: Bounded<ByteSize>,
    /// Processes and threads in the container.
    pub pids: Bounded<i64>,
    /// Cap on each of stdout and stderr; reaching it ends the job.
    pub output: Bounded<ByteSize>,
    /// Largest file a job may write (RLIMIT_FSIZE).
    pub file_size: Bounded<ByteSize>,
    /// Stack of each process (RLIMIT_STACK), for requests that set one. The default is the
    /// Judge0 API's, which always sets one (as Judge0 does); others keep the image's 8 MiB.
    pub stack: Bounded<ByteSize>,
    /// CPUs a job may use (CPU quota).
    pub cpus: f64,
    /// Size of each tmpfs (work dir and /tmp).
    pub tmpfs_bytes: ByteSize,
    pub open_files: i64,
    pub max_code_bytes: ByteSize,
    pub max_stdin_bytes: ByteSize,
    /// Extra source files a request may carry, and their total decoded size.
    pub max_files: usize,
    pub max_files_bytes: ByteSize,
    pub max_args: usize,
    pub max_arg_bytes: usize,
    /// Compile step: seconds (languages may override) and the cap on each of its streams.
    pub compile_timeout_secs: f64,
    pub compile_output_bytes: ByteSize,
    /// Largest request body; checked from Content-Length before the body is read.
    pub max_body_bytes: ByteSize,
    /// Executions one `POST /batch` may carry.
    pub max_batch: usize,
    /// Test cases one request may carry.
    pub max_tests: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            node_id: default_node_id(),
            workers: 4,
            drain_timeout_secs: 30,
            languages_file: None,
            log_format: LogFormat::Auto,
            docker: DockerConfig::default(),
            limits: LimitsConfig::default(),
            nats: NatsConfig::default(),
            api: ApiConfig::default(),
            supervision: SupervisionConfig::default(),
            pool: PoolConfig::default(),
            webhooks: WebhooksConfig::default(),
            judge0: Judge0Config::default(),
            piston: PistonConfig::default(),
        }
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: None,
            embedded_port: 4222,
            data_dir: PathBuf::from(".codebeaker"),
            replicas: 1,
            ack_wait_secs: 30,
            max_deliver: 3,
            max_ack_pending: 1024,
            duplicate_window_secs: 120,
            records_max_age_secs: 24 * 3600,
            max_requests_in_flight: 1024,
            user: None,
            password: None,
            token: None,
            creds_file: None,
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            runtime: None,
            user: "10001:10001".into(),
            backend: Backend::Cell,
            cell_max_jobs: 500,
        }
    }
}

/// A limit's default (what a request gets when it names none) and the range it may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bounded<T> {
    pub default: T,
    pub min: T,
    pub max: T,
}

impl<T: PartialOrd + Copy> Bounded<T> {
    /// Written this way round so that NaN is outside every range.
    pub fn contains(&self, v: T) -> bool {
        v >= self.min && v <= self.max
    }

    /// The nearest value within the range; NaN (within no range) becomes the default.
    pub fn clamp(&self, v: T) -> T {
        match v {
            v if self.contains(v) => v,
            v if v > self.max => self.max,
            v if v < self.min => self.min,
            _ => self.default,
        }
    }

    /// The default, or a language's own default kept within the range.
    pub fn default_with(&self, own: Option<T>) -> T {
        match own.unwrap_or(self.default) {
            v if v > self.max => self.max,
            v if v < self.min => self.min,
            v => v,
        }
    }
}

const fn bounded<T>(default: T, min: T, max: T) -> Bounded<T> {
    Bounded { default, min, max }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            timeout: bounded(5.0, 0.1, 60.0),
            cpu_time: bounded(5.0, 0.1, 60.0),
            memory: bounded(ByteSize::mib(256), ByteSize::mib(16), ByteSize::mib(2048)),
            pids: bounded(64, 8, 512),
            output: bounded(ByteSize::kib(64), ByteSize::kib(1), ByteSize::mib(1)),
            file_size: bounded(ByteSize::mib(16), ByteSize::kib(1), ByteSize::mib(64)),
            stack: bounded(ByteSize::mib(64), ByteSize::kib(64), ByteSize::mib(128)),
            cpus: 1.0,
            tmpfs_bytes: ByteSize::mib(64),
            open_files: 256,
            max_code_bytes: ByteSize::kib(256),
            max_stdin_bytes: ByteSize::mib(1),
            max_files: 20,
            max_files_bytes: ByteSize::mib(1),
            max_args: 64,
            max_arg_bytes: 4096,
            compile_timeout_secs: 10.0,
            compile_output_bytes: ByteSize::kib(64),
            max_body_bytes: ByteSize::mib(2),
            max_batch: 20,
            max_tests: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
    #[error("`{key}` {reason}")]
    Invalid { key: String, reason: String },
}

impl Config {
    /// Loads defaults, then the file (if any), then the environment; then validates.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("codebeaker.toml")),
        };
        let config: Config = figment
            .merge(Env::prefixed("CODEBEAKER_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: positive finite times and rates, ranges whose min is not
    /// above their max, and a job user that is not root. The error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        secs_range("limits.timeout", &l.timeout)?;
        secs_range("limits.cpu_time", &l.cpu_time)?;
        range("limits.memory", &l.memory)?;
        range("limits.pids", &l.pids)?;
        range("limits.output", &l.output)?;
        range("limits.file_size", &l.file_size)?;
        positive("limits.cpus", l.cpus)?;
        positive("limits.compile_timeout_secs", l.compile_timeout_secs)?;
        positive("api.rate_per_second", self.api.rate_per_second)?;
        if self.api.burst == 0 {
            return invalid("api.burst", "must be at least 1");
        }
        pool_range("pool", self.pool.min, self.pool.max)?;
        for (language, r) in &self.pool.languages {
            pool_range(&format!("pool.languages.{language}"), r.min, r.max)?;
        }
        if let Some(max) = self.supervision.max_workers {
            if max < self.workers {
                return invalid(
                    "supervision.max_workers",
                    format!("is {max}, below `workers` ({})", self.workers),
                );
            }
        }
        if runs_as_root(&self.docker.user) {
            return invalid(
                "docker.user",
                "must not be root (uid 0): jobs run as an unprivileged user, e.g. \"10001:10001\"",
            );
        }
        if self.limits.max_batch == 0 {
            return invalid("limits.max_batch", "must be at least 1");
        }
        if self.docker.cell_max_jobs == 0 {
            return invalid("docker.cell_max_jobs", "must be at least 1");
        }
        if self.nats.max_requests_in_flight == 0 {
            return invalid("nats.max_requests_in_flight", "must be at least 1");
        }
        let w = &self.webhooks;
        if w.enabled() && w.secret.as_deref().is_none_or(|s| s.len() < 16) {
            return invalid(
                "webhooks.secret",
                "must be set, at least 16 characters, once webhooks.allow_hosts is",
            );
        }
        if w.max_attempts == 0 || w.timeout_secs == 0 {
            return invalid(
                "webhooks.max_attempts / webhooks.timeout_secs",
                "must be at least 1",
            );
        }
        if self.nats.max_deliver < 1 || self.nats.ack_wait_secs == 0 {
            return invalid(
                "nats.max_deliver / nats.ack_wait_secs",
                "must be at least 1",
            );
        }
        Ok(())
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    })
}

/// Written so that NaN fails too.
fn positive(key: &str, v: f64) -> Result<(), ConfigError> {
    match v > 0.0 && v.is_finite() {
        true => Ok(()),
        false => invalid(key, format!("must be a positive number; got {v}")),
    }
}

fn secs_range(key: &str, b: &Bounded<f64>) -> Result<(), ConfigError> {
    for (part, v) in [("min", b.min), ("default", b.default), ("max", b.max)] {
        positive(&format!("{key}.{part}"), v)?;
    }
    range(key, b)
}

fn range<T: PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    b: &Bounded<T>,
) -> Result<(), ConfigError> {
    match b.min <= b.default && b.default <= b.max {
        true => Ok(()),
        false => invalid(
            key,
            format!(
                "needs min <= default <= max; got min {}, default {}, max {}",
                b.min, b.default, b.max
            ),
        ),
    }
}

fn pool_range(key: &str, min: usize, max: usize) -> Result<(), ConfigError> {
    match min <= max {
        true => Ok(()),
        false => invalid(
            &format!("{key}.min"),
            format!("is {min}, above {key}.max ({max})"),
        ),
    }
}

/// `root`, `0`, `0:…` or `root:…`.
fn runs_as_root(user: &str) -> bool {
    let uid = user.split(':').next().unwrap_or_default().trim();
    uid == "root" || uid.parse::<u32>() == Ok(0)
}

fn default_node_id() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "codebeaker".into())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's own signature
mod tests {
    use super::*;

    #[test]
    fn invalid_values_are_refused_naming_the_key() {
        let cases: [(&str, &str); 10] = [
            (
                "[webhooks]\nallow_hosts = [\"hooks.example.com\"]\n",
                "webhooks.secret",
            ),
            (
                "[webhooks]\nallow_hosts = [\"hooks.example.com\"]\nsecret = \"short\"\n",
                "webhooks.secret",
            ),
            ("[api]\nrate_per_second = 0\n", "api.rate_per_second"),
            (
                "[limits]\ntimeout = { default = -1.0, min = 0.1, max = 60.0 }\n",
                "limits.timeout.default",
            ),
            (
                "[limits]\ncpu_time = { default = nan, min = 0.1, max = 60.0 }\n",
                "limits.cpu_time.default",
            ),
            ("[docker]\nuser = \"0:0\"\n", "docker.user"),
            ("[docker]\nuser = \"root\"\n", "docker.user"),
            ("[limits]\ncpus = 0\n", "limits.cpus"),
            ("[pool]\nmin = 5\nmax = 2\n", "pool.min"),
            (
                "[limits]\npids = { default = 64, min = 100, max = 50 }\n",
                "limits.pids",
            ),
        ];
        for (toml, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.toml", toml)?;
                let err = Config::load(Some(Path::new("c.toml"))).unwrap_err();
                assert!(
                    err.to_string().starts_with(&format!("`{key}`")),
                    "{toml}: {err}"
                );
                Ok(())
            });
        }
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn environment_overrides_nested_keys() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CODEBEAKER_WORKERS", "7");
            jail.set_env("CODEBEAKER_LIMITS__MEMORY__MAX", "512m");
            let config = Config::load(None).unwrap();
            assert_eq!(config.workers, 7);
            assert_eq!(config.limits.memory.max, ByteSize::mib(512));
            assert_eq!(config.limits.memory.default, ByteSize::mib(256));
            Ok(())
        });
    }

    #[test]
    fn file_values_apply_and_unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:9000\"\n[limits]\npids = { default = 32, min = 8, max = 64 }\n",
            )?;
            let config = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.limits.pids.default, 32);
            jail.create_file("bad.toml", "listne = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            Ok(())
        });
    }
}
