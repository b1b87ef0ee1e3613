//! The embedded NATS server: `codebeaker serve` without a NATS URL runs `nats-server -js` as a
//! supervised child on loopback, with its JetStream files under the node's data dir.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
}

pub struct EmbeddedNats {
    pub url: String,
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
        .stdin(Stdio::null())
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

/// SIGTERM first so the server flushes its files; SIGKILL if it lingers.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg(pid.to_string()).status().await;
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
