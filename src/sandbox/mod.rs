//! The sandbox boundary: cells (hardened containers whose executor runs jobs in fresh
//! namespaces), through bollard. Nothing above this module sees a Docker type.
//!
//! - [`container`]: the outer wall, the container spec with every hardening default, and the
//!   [`Shape`] that decides which jobs a cell can serve.
//! - [`seccomp`]: the outer wall's seccomp profile.
//! - [`cell`]: a live cell and the framed protocol over its attach stream.
//! - [`execute`]: one job in a cell, under the node's backstop deadline.
//! - [`outcome`]: how an execution's ending becomes a status and a record.
//! - [`limits`], [`output`]: limit values and capped output buffers.
//! - [`images`]: which languages' images this node has, looked for again while some are missing.
//!
//! Two backends share all of this: `cell` (a cell serves many jobs, one after another) and
//! `container` (a cell serves one job, then goes). gVisor allows no mounts inside a job's
//! namespaces, so under runsc every cell serves one job.

pub mod cell;
pub mod container;
pub mod execute;
pub mod images;
pub mod limits;
pub mod outcome;
pub mod output;
pub mod seccomp;

use std::collections::HashMap;
use std::sync::Arc;

use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;

use crate::config::{Backend, DockerConfig};
use crate::model::Job;
pub use cell::Cell;
pub use container::Shape;
use container::{Owner, LABEL_EXECUTION, LABEL_NODE};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot reach the Docker engine ({0}); is dockerd running? scripts/setup.sh starts it"
    )]
    Unreachable(#[source] bollard::errors::Error),
    #[error("image {0} is missing; scripts/setup.sh --languages all builds it")]
    MissingImage(String),
    #[error("Docker {op} failed: {source}")]
    Docker {
        op: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the cell's stdin could not be written: {0}")]
    Stdin(#[source] std::io::Error),
    #[error("the cell's executor broke the protocol: {0}")]
    Frame(#[source] codebeaker_cell::protocol::FrameError),
    #[error("{0}")]
    Protocol(String),
    #[error("the cell ended")]
    CellGone,
}

impl SandboxError {
    fn docker(op: &'static str) -> impl FnOnce(bollard::errors::Error) -> SandboxError {
        move |source| SandboxError::Docker { op, source }
    }
}

/// A handle on the Docker engine for one node. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    docker: Docker,
    node_id: Arc<str>,
    config: Arc<DockerConfig>,
}

impl Sandbox {
    /// Connects through `DOCKER_HOST` or the local socket and agrees on an API version, since
    /// Debian's engine speaks an older API than bollard defaults to.
    pub async fn connect(node_id: &str, config: &DockerConfig) -> Result<Sandbox, SandboxError> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(SandboxError::Unreachable)?
            .negotiate_version()
            .await
            .map_err(SandboxError::Unreachable)?;
        let sandbox = Sandbox {
            docker,
            node_id: node_id.into(),
            config: Arc::new(config.clone()),
        };
        sandbox.ping().await?;
        Ok(sandbox)
    }

    pub async fn ping(&self) -> Result<(), SandboxError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(SandboxError::Unreachable)
    }

    pub async fn check_image(&self, image: &str) -> Result<(), SandboxError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(SandboxError::MissingImage(image.to_string())),
            Err(e) => Err(SandboxError::docker("inspect image")(e)),
        }
    }

    /// The cell `job` needs.
    pub fn shape(&self, job: &Job) -> Shape {
        Shape {
            image: job.language.image.clone(),
            runtime: self.runtime_for(job).map(str::to_string),
            memory: job.limits.memory,
            pids: job.limits.pids,
            cpus: job.limits.cpus,
            tmpfs: job.limits.tmpfs,
            open_files: job.limits.open_files,
        }
    }

    /// How many jobs a cell for `job` may serve: one for the `container` backend and under
    /// gVisor (whose user namespaces allow no fresh mounts), else the configured number.
    pub fn jobs_per_cell(&self, job: &Job) -> u32 {
        let backend = job.language.backend.unwrap_or(self.config.backend);
        match (backend, self.runtime_for(job) == Some(container::GVISOR)) {
            (Backend::Cell, false) => self.config.cell_max_jobs.max(1),
            _ => 1,
        }
    }

    /// Creates, attaches and starts a cell, and waits for its executor's hello. `created`
    /// learns the container id as soon as it exists; on failure the container is removed.
    pub async fn cell(
        &self,
        shape: Shape,
        owner: Owner<'_>,
        max_jobs: u32,
        created: impl FnOnce(&str),
    ) -> Result<Cell, SandboxError> {
        let name = match owner {
            // A redelivered job gets a cell of its own beside any its earlier attempt left.
            Owner::Execution(id) => format!("codebeaker-{id}-{:04x}", rand::random::<u16>()),
            Owner::Pool(_) => format!("codebeaker-cell-{:08x}", rand::random::<u32>()),
        };
        let body = container::body(&shape, owner, &self.node_id, &self.config.user);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(SandboxError::docker("create container"))?
            .id;
        created(&id);
        match self.start_cell(&id, shape, max_jobs).await {
            Ok(cell) => Ok(cell),
            Err(e) => {
                self.remove(&id).await;
                Err(e)
            }
        }
    }

    /// Attaches first, so that no early output is missed, then starts.
    async fn start_cell(
        &self,
        id: &str,
        shape: Shape,
        max_jobs: u32,
    ) -> Result<Cell, SandboxError> {
        let attach = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = self
            .docker
            .attach_container(id, Some(attach))
            .await
            .map_err(SandboxError::docker("attach container"))?;
        self.docker
            .start_container(id, None)
            .await
            .map_err(SandboxError::docker("start container"))?;
        let mut cell = Cell::new(
            id.to_string(),
            shape,
            attached.output,
            attached.input,
            max_jobs,
        );
        cell.handshake().await?;
        Ok(cell)
    }

    /// Whether the kernel's OOM killer fired in a cell that ended without a report.
    /// The attach stream can close before Docker records the container's end (seen under
    /// gVisor, whose sandbox dies whole), so this waits up to 5 s for the container to stop
    /// (a loaded machine once read a memory hog as internal_error with 2 s).
    ///
    /// Docker learns of an OOM kill from its own event, which can come after the one saying
    /// the container ended: a container that ended by SIGKILL (137) without the flag is asked
    /// again for up to 4 s more (CI under load read a gVisor memory hog, stopped with 137, as
    /// internal_error, with 1 s).
    async fn oom_killed(&self, id: &str) -> bool {
        let mut killed_checks = 40;
        for _ in 0..50 {
            let Ok(inspect) = self.docker.inspect_container(id, None).await else {
                return false;
            };
            let state = inspect.state.unwrap_or_default();
            if state.oom_killed == Some(true) {
                return true;
            }
            if state.running != Some(true) {
                if state.exit_code != Some(137) || killed_checks == 0 {
                    return false;
                }
                killed_checks -= 1;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    /// The OCI runtime a job runs under: its language's choice, else the deployment's.
    pub fn runtime_for<'a>(&'a self, job: &'a Job) -> Option<&'a str> {
        job.language
            .runtime
            .as_deref()
            .or(self.config.runtime.as_deref())
    }

    /// Kills and removes a container; a container already gone counts as removed.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            // 409: a removal is already under way elsewhere; gone means gone, so wait for it.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                for _ in 0..100 {
                    if self.docker.inspect_container(id, None).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            Err(e) => tracing::warn!(container = id, error = %e, "could not remove container"),
        }
    }

    /// Removes a container in the background: nobody waits for it.
    pub fn remove_later(&self, id: String) {
        let sandbox = self.clone();
        tokio::spawn(async move { sandbox.remove(&id).await });
    }

    /// Removes every container of this node: at start-up (what a previous run left behind)
    /// and at shutdown (what is still running). Returns how many were removed.
    pub async fn remove_node_containers(&self) -> Result<usize, SandboxError> {
        self.remove_labelled(LABEL_NODE, &self.node_id).await
    }

    /// Removes the container of one execution, wherever it is in its life.
    pub async fn remove_execution(&self, execution_id: &str) -> Result<usize, SandboxError> {
        self.remove_labelled(LABEL_EXECUTION, execution_id).await
    }

    async fn remove_labelled(&self, key: &str, value: &str) -> Result<usize, SandboxError> {
        let ids = self.list_labelled(key, value).await?;
        futures::future::join_all(ids.iter().map(|id| self.remove(id))).await;
        Ok(ids.len())
    }

    /// Ids of the containers, running or not, whose label `key` equals `value`.
    pub async fn list_labelled(&self, key: &str, value: &str) -> Result<Vec<String>, SandboxError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{key}={value}")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(SandboxError::docker("list containers"))?;
        Ok(list.into_iter().filter_map(|c| c.id).collect())
    }
}
