//! The embedded NATS server: `codebeaker serve` without a NATS URL runs `nats-server -js` as a
//! supervised child on loopback, with its JetStream files under the node's data dir.
//!
//! Loopback is open to every local process, so the server asks for a password: made at first
//! start and kept in `<data_dir>/nats/credentials.toml` (mode 0600), which the node and the CLI
//! read. Anyone who can read that file is trusted with the queue and the records.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::NatsConfig;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot start nats-server (is it installed? scripts/setup.sh installs it): {0}")]
    Spawn(std::io::Error),
    #[error("cannot create the NATS data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nats-server did not accept connections on port {port} within 10 s; see {log}")]
    NotListening { port: u16, log: String },
    #[error("cannot read or write the embedded NATS credentials {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
}

/// The embedded server's one user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("nats").join("credentials.toml")
    }

    /// The credentials kept under `data_dir`, if a server was started there.
    pub fn load(data_dir: &Path) -> Result<Option<Credentials>, EmbeddedError> {
        let path = Self::path(data_dir);
        let fail = |reason: String| EmbeddedError::Credentials {
            path: path.clone(),
            reason,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| fail(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// The kept credentials, or new ones (two random v4 UUIDs: 244 random bits) written
    /// for the user alone to read.
    fn load_or_create(data_dir: &Path) -> Result<Credentials, EmbeddedError> {
        if let Some(kept) = Self::load(data_dir)? {
            return Ok(kept);
        }
        let made = Credentials {
            user: "codebeaker".into(),
            password: format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            ),
        };
        let text = toml::to_string(&made).expect("two strings serialise");
        write_private(&Self::path(data_dir), &text)?;
        Ok(made)
    }
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, text: &str) -> Result<(), EmbeddedError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| EmbeddedError::Credentials {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

pub struct EmbeddedNats {
    pub url: String,
    pub credentials: Credentials,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl EmbeddedNats {
    pub async fn start(port: u16, data_dir: &Path) -> Result<EmbeddedNats, EmbeddedError> {
        let dir = data_dir.join("nats");
        std::fs::create_dir_all(&dir).map_err(|source| EmbeddedError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let credentials = Credentials::load_or_create(data_dir)?;
        // The server's own config holds only the user; flags give it the rest.
        let auth = format!(
            "authorization {{ user: \"{}\", password: \"{}\" }}\n",
            credentials.user, credentials.password
        );
        write_private(&dir.join("auth.conf"), &auth)?;
        let log = dir.join("nats-server.log");
        let child = spawn(port, &dir, &log)?;
        if !listening(port, Duration::from_secs(10)).await {
            return Err(EmbeddedError::NotListening {
                port,
                log: log.display().to_string(),
            });
        }
        tracing::info!(port, dir = %dir.display(), "embedded nats-server running");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(supervise(child, port, dir, log, stopped));
        Ok(EmbeddedNats {
            url: format!("nats://127.0.0.1:{port}"),
            credentials,
            stop,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn spawn(port: u16, dir: &Path, log: &Path) -> Result<Child, EmbeddedError> {
    Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string()])
        .arg("-sd")
        .arg(dir)
        .arg("-l")
        .arg(log)
        .arg("-c")
        .arg(dir.join("auth.conf"))
        .stdin(Stdio::null())
        // It logs to its file; stdout may be an MCP client's channel (`codebeaker mcp`).
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(EmbeddedError::Spawn)
}

/// Restarts the server whenever it exits, with backoff, until told to stop.
async fn supervise(
    mut child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        tokio::select! {
            _ = &mut stop => {
                terminate(&mut child).await;
                return;
            }
            status = child.wait() => {
                tracing::error!(?status, log = %log.display(), "embedded nats-server exited; restarting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                match spawn(port, &dir, &log) {
                    Ok(next) => child = next,
                    Err(e) => tracing::error!(error = %e, "could not restart nats-server"),
                }
            }
        }
    }
}

/// The NATS settings for a node or the CLI on this machine: the embedded server's kept
/// credentials, unless credentials are configured.
pub fn with_kept_credentials(config: &NatsConfig) -> Result<NatsConfig, EmbeddedError> {
    let configured = config.user.is_some() || config.token.is_some() || config.creds_file.is_some();
    match (configured, Credentials::load(&config.data_dir)?) {
        (false, Some(kept)) => Ok(NatsConfig {
            user: Some(kept.user),
            password: Some(kept.password),
            ..config.clone()
        }),
        _ => Ok(config.clone()),
    }
}

/// SIGTERM first so the server flushes its files; SIGKILL if it lingers.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with our own child's pid; it has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

async fn listening(port: u16, patience: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + patience;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
