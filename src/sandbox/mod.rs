//! Docker, through bollard: the hardened one-shot containers jobs run in.
//!
//! - [`container`]: the container spec with every hardening default.
//! - [`bootstrap`]: how code and stdin get in (over stdin) and the final report gets out.
//! - [`execute`]: attach, start, feed, capture under the deadline, collect the exit, remove.
//! - [`outcome`]: how an execution's ending becomes a status and a record.
//! - [`limits`], [`output`]: limit values and capped output buffers.

pub mod bootstrap;
pub mod container;
pub mod execute;
pub mod limits;
pub mod outcome;
pub mod output;

use std::collections::HashMap;
use std::sync::Arc;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;

use crate::config::DockerConfig;
use crate::model::Job;
use container::{Spec, LABEL_EXECUTION, LABEL_NODE};
pub use execute::{Attached, Container};

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "cannot reach the Docker engine ({0}); is dockerd running? scripts/setup.sh starts it"
    )]
    Unreachable(#[source] bollard::errors::Error),
    #[error("image {0} is missing; scripts/setup.sh builds it")]
    MissingImage(String),
    #[error("Docker {op} failed: {source}")]
    Docker {
        op: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the container's stdin could not be written: {0}")]
    Stdin(#[source] std::io::Error),
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

    /// Creates (does not start) the container for `job`.
    pub async fn create(&self, job: &Job) -> Result<String, SandboxError> {
        let body = self.body(job, Some(job.execution_id.to_string()));
        // A redelivered job gets a container of its own beside any its earlier attempt left.
        let name = format!(
            "codebeaker-{}-{:04x}",
            job.execution_id,
            rand::random::<u16>()
        );
        self.create_named(&name, body).await
    }

    /// The container `job` needs. With no execution id: as a pooled container would be, so
    /// that `body(job, None) == pool's body` says a pooled container fits the job.
    pub fn body(&self, job: &Job, execution_id: Option<String>) -> ContainerCreateBody {
        Spec {
            execution_id,
            node_id: &self.node_id,
            language: &job.language,
            args: &job.args,
            limits: &job.limits,
            user: &self.config.user,
            runtime: self.runtime_for(job),
        }
        .build()
    }

    /// Creates, attaches and starts a container ahead of its job, from a body made by
    /// [`Sandbox::body`] with no execution id. Its bootstrap then waits on stdin. `created`
    /// learns the id as soon as the container exists.
    pub async fn warm(
        &self,
        body: ContainerCreateBody,
        created: impl FnOnce(&str),
    ) -> Result<Attached, SandboxError> {
        let name = format!("codebeaker-pool-{:08x}", rand::random::<u32>());
        let id = self.create_named(&name, body).await?;
        created(&id);
        match self.attach_and_start(&id).await {
            Ok(attached) => Ok(attached),
            Err(e) => {
                self.remove(&id).await;
                Err(e)
            }
        }
    }

    async fn create_named(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, SandboxError> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(SandboxError::docker("create container"))?;
        Ok(created.id)
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

    pub(crate) fn docker(&self) -> &Docker {
        &self.docker
    }
}
