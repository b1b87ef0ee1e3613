//! Batches: up to `limits.max_batch` ordinary requests, validated together (one bad request
//! refuses the batch, so that nothing of it runs), queued as ordinary jobs (each with its own
//! priority, spread over the workers like any job), and read back as one.

use std::collections::HashSet;

use chrono::Utc;
use futures::future::{join_all, try_join_all};
use uuid::Uuid;

use super::{parse_id, AppError, Executions, RequestId, Thing};
use crate::model::{BatchRecord, BatchRequest, ExecutionRecord, Job, ValidationError};
use crate::queue::batches::Batch;
use crate::queue::callbacks::Target;

impl Executions {
    /// Queues the batch; with `wait`, waits for every record (each within its job's budget).
    /// The records come back as they stand.
    pub async fn submit_batch(
        &self,
        request: BatchRequest,
        request_id: &RequestId,
    ) -> Result<BatchRecord, AppError> {
        self.check_callback(request.callback_url.as_deref())
            .map_err(AppError::from)?;
        let batch_id = Uuid::new_v4();
        let mut jobs = self.validate_batch(request.executions)?;
        // Nothing is queued unless every execution can run.
        for (index, job) in jobs.iter().enumerate() {
            self.check_served(job)
                .await
                .map_err(|e| AppError::InBatch {
                    index,
                    source: Box::new(e),
                })?;
        }
        for job in &mut jobs {
            job.submission.batch_id = Some(batch_id);
        }
        let batch = Batch {
            batch_id,
            execution_ids: jobs.iter().map(Job::id).collect(),
            callback_url: request.callback_url,
            created_at: Utc::now(),
        };
        tracing::info!(batch_id = %batch.batch_id, executions = jobs.len(), "batch queued");
        // Stored first, so that a client may read the batch as soon as it has the id.
        self.ctx.queue.batches.create(&batch).await?;
        let queued = try_join_all(jobs.iter().map(|job| self.enqueue(job, request_id))).await?;
        let executions = match request.wait {
            false => queued,
            true => {
                let waits = jobs.iter().zip(queued).map(|(job, q)| self.wait(job, q));
                try_join_all(waits).await?
            }
        };
        self.batch_record(&batch, executions).await
    }

    fn validate_batch(
        &self,
        requests: Vec<crate::model::ExecuteRequest>,
    ) -> Result<Vec<Job>, AppError> {
        let max = self.ctx.config.limits.max_batch;
        if requests.is_empty() || requests.len() > max {
            return Err(ValidationError::Invalid {
                field: "executions",
                message: format!(
                    "a batch takes 1 to {max} executions, not {}",
                    requests.len()
                ),
            }
            .into());
        }
        let mut seen = HashSet::new();
        let mut jobs = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            let in_batch = |source: AppError| AppError::InBatch {
                index,
                source: Box::new(source),
            };
            let job = self.validate(request).map_err(in_batch)?;
            if !seen.insert(job.id()) {
                let twice = ValidationError::Invalid {
                    field: "execution_id",
                    message: format!("{} is given twice", job.id()),
                };
                return Err(in_batch(twice.into()));
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// The batch's records as they stand (one whose record has expired is left out).
    pub async fn get_batch(&self, id: &str) -> Result<BatchRecord, AppError> {
        let id = parse_id(id, Thing::Batch)?;
        let Some(batch) = self.ctx.queue.batches.get(&id).await? else {
            return Err(AppError::NotFound {
                what: Thing::Batch,
                id,
            });
        };
        let records = &self.ctx.queue.records;
        let found = join_all(batch.execution_ids.iter().map(|id| records.get(id))).await;
        let mut out = Vec::with_capacity(found.len());
        for record in found {
            if let Some(versioned) = record? {
                out.push(self.with_callback(versioned.record).await?);
            }
        }
        self.batch_record(&batch, out).await
    }

    /// The batch as clients read it: its records, and its own delivery's state.
    async fn batch_record(
        &self,
        batch: &Batch,
        executions: Vec<ExecutionRecord>,
    ) -> Result<BatchRecord, AppError> {
        let callback = match batch.callback_url {
            Some(_) => Some(self.callback(Target::Batch(batch.batch_id)).await?),
            None => None,
        };
        Ok(BatchRecord {
            batch_id: batch.batch_id,
            executions,
            callback,
        })
    }
}
