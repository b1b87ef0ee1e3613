//! WorkerActor: runs one job at a time, from container to record, then asks for the next.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::metrics::MetricsMsg;
use super::runtime::RuntimeMsg;
use super::supervisor::SupervisorMsg;
use super::{lookup, names, NodeContext};
use crate::model::{ExecutionRecord, Job};

/// A job and where its record goes.
pub struct Assignment {
    pub job: Box<Job>,
    pub reply: RpcReplyPort<ExecutionRecord>,
}

pub enum WorkerMsg {
    Run(Assignment),
}

pub struct WorkerActor;

pub struct WorkerState {
    ctx: Arc<NodeContext>,
    supervisor: ActorRef<SupervisorMsg>,
}

/// How long a container create may take before the job is failed.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

impl Actor for WorkerActor {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = (Arc<NodeContext>, ActorRef<SupervisorMsg>);

    async fn pre_start(
        &self,
        _: ActorRef<WorkerMsg>,
        (ctx, supervisor): Self::Arguments,
    ) -> Result<WorkerState, ActorProcessingErr> {
        Ok(WorkerState { ctx, supervisor })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Run(Assignment { job, reply }) = msg;
        let record = run(&state.ctx, &job).await;
        if let Some(metrics) = lookup::<MetricsMsg>(&names::metrics(state.ctx.node_id())) {
            let _ = metrics.cast(MetricsMsg::Executed {
                language: record.language.clone(),
                status: record.status,
                duration: Duration::from_millis(record.duration_ms.unwrap_or(0)),
            });
        }
        let _ = reply.send(record);
        state
            .supervisor
            .cast(SupervisorMsg::WorkerIdle(myself.get_id()))?;
        Ok(())
    }
}

async fn run(ctx: &NodeContext, job: &Job) -> ExecutionRecord {
    let runtime_name = names::runtime(ctx.node_id(), &job.language.name);
    let Some(runtime) = lookup::<RuntimeMsg>(&runtime_name) else {
        return ExecutionRecord::internal_error(job, "the language runtime is restarting");
    };
    let acquired = runtime
        .call(
            |port| RuntimeMsg::Acquire(Box::new(job.clone()), port),
            Some(ACQUIRE_TIMEOUT),
        )
        .await;
    let container = match acquired {
        Ok(ractor::rpc::CallResult::Success(Ok(id))) => id,
        Ok(ractor::rpc::CallResult::Success(Err(e))) => {
            return ExecutionRecord::internal_error(job, e.to_string())
        }
        Ok(_) | Err(_) => {
            return ExecutionRecord::internal_error(job, "no container could be had in time")
        }
    };
    match ctx.sandbox.execute(&container, job).await {
        Ok(outcome) => outcome.into_record(job, ctx.node_id()),
        Err(e) => {
            tracing::error!(execution_id = %job.execution_id, error = %e, "execution failed");
            ExecutionRecord::internal_error(job, e.to_string())
        }
    }
}
