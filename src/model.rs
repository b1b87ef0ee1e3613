//! What clients send (a request), what they get back (an execution record), and the job a
//! validated request becomes on its way to a worker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::LimitsConfig;
use crate::languages::{Language, Languages};
use crate::sandbox::limits::{ByteSize, LimitError, Limits};

/// `POST /execute` body. Unknown fields are refused so that a client never believes a field
/// it sent (say `files` or `args`) took effect when this server does not support it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub language: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdin: String,
    /// Wall-clock limit in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// Memory (and memory+swap) limit, e.g. `"128m"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// A client-chosen id makes submission idempotent: the same id runs once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    /// Highest first: the order workers take jobs in.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    fn is_normal(&self) -> bool {
        *self == Priority::Normal
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    /// The program ran to its own exit, whatever its exit code.
    Completed,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    Cancelled,
    InternalError,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::TimeLimitExceeded => "time_limit_exceeded",
            Status::MemoryLimitExceeded => "memory_limit_exceeded",
            Status::OutputLimitExceeded => "output_limit_exceeded",
            Status::Cancelled => "cancelled",
            Status::InternalError => "internal_error",
        }
    }

    /// A final status never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

/// The result of one execution, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub execution_id: Uuid,
    pub status: Status,
    pub exit_code: Option<i64>,
    /// Name of the signal that ended the program (`SIGKILL`), when one did.
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub language: String,
    pub version: String,
    pub node: Option<String>,
    /// Why an execution ended in `internal_error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A validated request with its id and resolved limits, ready for a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub execution_id: Uuid,
    pub language: Language,
    pub code: String,
    pub stdin: String,
    pub limits: Limits,
    pub priority: Priority,
    pub created_at: DateTime<Utc>,
}

/// Why a request was refused before running.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ValidationError {
    #[error("unknown language `{name}`; known languages: {}", known.join(", "))]
    UnknownLanguage { name: String, known: Vec<String> },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{field} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        field: &'static str,
        size: usize,
        limit: u64,
    },
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl ExecuteRequest {
    pub fn validate(
        self,
        languages: &Languages,
        limits: &LimitsConfig,
    ) -> Result<Job, ValidationError> {
        let language = languages.get(&self.language).cloned().ok_or_else(|| {
            ValidationError::UnknownLanguage {
                name: self.language.clone(),
                known: languages.names().iter().map(|s| s.to_string()).collect(),
            }
        })?;
        if self.code.trim().is_empty() {
            return Err(ValidationError::Invalid {
                field: "code",
                message: "must not be empty".into(),
            });
        }
        check_size("code", &self.code, limits.max_code_bytes)?;
        check_size("stdin", &self.stdin, limits.max_stdin_bytes)?;
        let limits = Limits::resolve(limits, self.timeout, self.memory_limit)?;
        Ok(Job {
            execution_id: self.execution_id.unwrap_or_else(Uuid::new_v4),
            priority: self.priority,
            language,
            code: self.code,
            stdin: self.stdin,
            limits,
            created_at: Utc::now(),
        })
    }
}

fn check_size(field: &'static str, value: &str, limit: ByteSize) -> Result<(), ValidationError> {
    if value.len() as u64 > limit.bytes() {
        return Err(ValidationError::TooLarge {
            field,
            size: value.len(),
            limit: limit.bytes(),
        });
    }
    Ok(())
}

impl ExecutionRecord {
    /// A record for a job that has not produced a result yet.
    pub fn new(job: &Job, status: Status) -> Self {
        ExecutionRecord {
            execution_id: job.execution_id,
            status,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: None,
            cpu_time_ms: None,
            memory_peak_bytes: None,
            language: job.language.name.clone(),
            version: job.language.version.clone(),
            node: None,
            error: None,
            created_at: job.created_at,
            started_at: None,
            finished_at: None,
        }
    }

    pub fn internal_error(job: &Job, reason: impl Into<String>) -> Self {
        ExecutionRecord::new(job, Status::Queued).failed(reason)
    }

    /// This record, ended as `internal_error` for the given reason.
    pub fn failed(self, reason: impl Into<String>) -> Self {
        ExecutionRecord {
            status: Status::InternalError,
            error: Some(reason.into()),
            finished_at: Some(Utc::now()),
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> ExecuteRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_valid_request_becomes_a_job_with_defaults() {
        let langs = Languages::load(None).unwrap();
        let job = request(r#"{"language":"py","code":"print(1)"}"#)
            .validate(&langs, &LimitsConfig::default())
            .unwrap();
        assert_eq!(job.language.name, "python");
        assert_eq!(job.limits.memory, LimitsConfig::default().default_memory);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let langs = Languages::load(None).unwrap();
        let cfg = LimitsConfig::default();
        let err = request(r#"{"language":"cobol","code":"x"}"#)
            .validate(&langs, &cfg)
            .unwrap_err();
        assert!(err.to_string().contains("known languages: python"), "{err}");
        let err = request(r#"{"language":"python","code":"  \n"}"#)
            .validate(&langs, &cfg)
            .unwrap_err();
        assert!(matches!(
            err,
            ValidationError::Invalid { field: "code", .. }
        ));
        let big = "x".repeat(cfg.max_code_bytes.bytes() as usize + 1);
        let err = ExecuteRequest {
            language: "python".into(),
            code: big,
            stdin: String::new(),
            timeout: None,
            memory_limit: None,
            priority: Priority::Normal,
            execution_id: None,
        }
        .validate(&langs, &cfg)
        .unwrap_err();
        assert!(matches!(
            err,
            ValidationError::TooLarge { field: "code", .. }
        ));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ExecuteRequest>(
            r#"{"language":"python","code":"x","files":[]}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `files`"));
    }

    #[test]
    fn statuses_serialise_in_snake_case() {
        for status in [
            Status::TimeLimitExceeded,
            Status::InternalError,
            Status::Completed,
        ] {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
        }
    }
}
