//! RuntimeActor: one per language. It owns the language's image and hands out fresh,
//! hardened containers; Docker calls run in spawned tasks so that one slow create never holds
//! up the next request.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::metrics::MetricsMsg;
use super::{names, WorkerContext};
use crate::languages::Language;
use crate::model::Job;
use crate::sandbox::SandboxError;

pub enum RuntimeMsg {
    /// A new container (created, not started) for this job.
    Acquire(Box<Job>, RpcReplyPort<Result<String, SandboxError>>),
    /// The Supervisor's health check.
    Ping(RpcReplyPort<()>),
}

pub struct RuntimeActor;

pub struct RuntimeState {
    ctx: Arc<WorkerContext>,
}

impl Actor for RuntimeActor {
    type Msg = RuntimeMsg;
    type State = RuntimeState;
    type Arguments = (Arc<WorkerContext>, Language);

    async fn pre_start(
        &self,
        _: ActorRef<RuntimeMsg>,
        (ctx, language): Self::Arguments,
    ) -> Result<RuntimeState, ActorProcessingErr> {
        // A missing image is a setup problem: fail loudly at start, not on the first job.
        ctx.sandbox.check_image(&language.image).await?;
        // Containers are created per job on Acquire, so none is held ready: the pool is empty.
        if let Some(metrics) = super::lookup::<MetricsMsg>(&names::metrics(ctx.node.node_id())) {
            let _ = metrics.cast(MetricsMsg::PoolSize {
                language: language.name.clone(),
                size: 0,
            });
        }
        Ok(RuntimeState { ctx })
    }

    async fn handle(
        &self,
        _: ActorRef<RuntimeMsg>,
        msg: RuntimeMsg,
        state: &mut RuntimeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RuntimeMsg::Ping(reply) => drop(reply.send(())),
            RuntimeMsg::Acquire(job, reply) => {
                let sandbox = state.ctx.sandbox.clone();
                tokio::spawn(async move {
                    let created = sandbox.create(&job).await;
                    // The worker that asked is gone: its container must not outlive it.
                    if let Err(ractor::MessagingErr::SendErr(Ok(id))) = reply.send(created) {
                        sandbox.remove(&id).await;
                    }
                });
            }
        }
        Ok(())
    }
}
