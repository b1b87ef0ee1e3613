//! What clients send (a request), what they get back (an execution record), and the job a
//! validated request becomes on its way to a worker.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::LimitsConfig;
use crate::judge::{Compare, TestCase, TestResult, Verdict};
use crate::languages::{Language, Languages};
use crate::sandbox::limits::{ByteSize, LimitError, Limits, Policy, Requested};

/// `POST /execute` body. Unknown fields are refused so that a client never believes a field
/// it sent (say `files` or `args`) took effect when this server does not support it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteRequest {
    pub language: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdin: String,
    /// Wall-clock limit in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// CPU seconds, e.g. to stop a spinning multi-threaded program before its wall time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_time: Option<f64>,
    /// Memory (and memory+swap) limit, e.g. `"128m"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
    /// Processes and threads the job may have at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Cap on each of stdout and stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_limit: Option<ByteSize>,
    /// Largest file the job may write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size_limit: Option<ByteSize>,
    /// Stack size of each process (RLIMIT_STACK); the image's default (8 MiB) when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_limit: Option<ByteSize>,
    /// The program's stderr goes into its stdout, interleaved as written.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stderr_to_stdout: bool,
    /// Appended to the compile command, for compiled languages (e.g. `-O0 -Wall`). Shell
    /// metacharacters (`$&;<>|` and backquotes) are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiler_options: Option<String>,
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// A client-chosen id makes submission idempotent: the same id runs once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<Uuid>,
    /// More source files, written beside the main one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SourceFile>,
    /// Command-line arguments for the program.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Packages the code uses; each must be one the language allows (all are preinstalled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Test cases: the program compiles once, then runs once per case, each in a fresh
    /// sandbox, and each case gets a verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestCase>,
    /// How each case's stdout is compared with its `expected_output`.
    #[serde(default, skip_serializing_if = "Compare::is_default")]
    pub compare: Compare,
    /// Where to POST the record once it is final (signed; see `[webhooks]`). Only hosts the
    /// server allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// What the API the request came through keeps with the record to answer in its own
    /// shape (the Judge0 API's request fields); set by adapters, never by a client.
    #[serde(skip)]
    pub echo: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Relative path inside the work dir, e.g. `util.py` or `pkg/helper.c`.
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// A source file as a job carries it: a checked name and its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobFile {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub content: Vec<u8>,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    /// The program ran to its own exit, whatever its exit code.
    Completed,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    CompileError,
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
            Status::CompileError => "compile_error",
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The exact bytes, base64, when stdout is not valid UTF-8 (`stdout` then has U+FFFD
    /// in place of the invalid bytes).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stdout_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stderr_base64: Option<String>,
    /// The compile step, for compiled languages.
    pub compile: Option<CompileResult>,
    pub duration_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub language: String,
    pub version: String,
    pub node: Option<String>,
    /// Why an execution ended in `internal_error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Each test case's run and verdict, for a request with `tests`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tests: Option<Vec<TestResult>>,
    /// The first case's verdict that is not `accepted`, else `accepted`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verdict: Option<Verdict>,
    /// Where the final record is POSTed, as the request named it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback_url: Option<String>,
    /// How that delivery stands; shown on reads, never stored with the record.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback: Option<Callback>,
    /// The batch the execution belongs to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub batch_id: Option<Uuid>,
    /// What the API the request came through keeps to answer in its own shape (the Judge0
    /// API: its request fields).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<Object>)]
    pub echo: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// How a webhook delivery stands: tried `attempts` times so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Callback {
    pub state: CallbackState,
    pub attempts: u32,
    /// Why the last attempt failed, while it is pending or once it has failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallbackState {
    Pending,
    Delivered,
    Failed,
}

impl Callback {
    pub fn new(state: CallbackState, attempts: u32, error: Option<String>) -> Callback {
        Callback {
            state,
            attempts,
            error,
        }
    }
}

impl CallbackState {
    pub fn is_final(self) -> bool {
        self != CallbackState::Pending
    }
}

/// What the compile step printed and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CompileResult {
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// None when the compiler was killed at its time limit.
    pub exit_code: Option<i64>,
    pub timed_out: bool,
    pub duration_ms: u64,
}

/// `POST /batch` body: ordinary requests, each run as its own job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub executions: Vec<ExecuteRequest>,
    /// Answer once every execution is final (200 with the records), rather than at once.
    #[serde(default)]
    pub wait: bool,
    /// Where to POST the batch (`{"batch_id", "executions": [record...]}`) once every
    /// execution in it is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// A batch's executions as they stand: `GET /batch/{id}`, and `POST /batch` with `wait`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRecord {
    pub batch_id: Uuid,
    pub executions: Vec<ExecutionRecord>,
    /// How the batch's own webhook delivery stands, when it named a `callback_url`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub callback: Option<Callback>,
}

/// A batch as accepted: its id and each execution's id and status.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchAccepted {
    pub batch_id: Uuid,
    pub executions: Vec<ExecutionRef>,
}

/// A record without its output or request: a row of the recent executions (`GET /executions`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionSummary {
    pub execution_id: Uuid,
    pub status: Status,
    pub language: String,
    pub node: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&ExecutionRecord> for ExecutionSummary {
    fn from(r: &ExecutionRecord) -> ExecutionSummary {
        ExecutionSummary {
            execution_id: r.execution_id,
            status: r.status,
            language: r.language.clone(),
            node: r.node.clone(),
            exit_code: r.exit_code,
            duration_ms: r.duration_ms,
            cpu_time_ms: r.cpu_time_ms,
            memory_peak_bytes: r.memory_peak_bytes,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// Jobs waiting in the stream, by priority (`GET /queue`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backlog {
    pub high: u64,
    pub normal: u64,
    pub low: u64,
}

/// An execution's id and status, without its output.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExecutionRef {
    pub execution_id: Uuid,
    pub status: Status,
}

impl From<&ExecutionRecord> for ExecutionRef {
    fn from(record: &ExecutionRecord) -> ExecutionRef {
        ExecutionRef {
            execution_id: record.execution_id,
            status: record.status,
        }
    }
}

/// A job as it travels on the job stream: what the client asked for, and nothing a worker
/// must trust. Anyone who can publish on `codebeaker.jobs.*` can write one, so a worker takes
/// the image, commands and runtime from its own `languages.toml` and resolves the limits within
/// its own bounds ([`Submission::resolve`]). Unknown fields (an `image`, a `runtime`) are
/// ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    pub execution_id: Uuid,
    /// The language's name (or alias), as the client gave it.
    pub language: String,
    pub code: String,
    pub stdin: String,
    /// The limits the client asked for; each optional.
    pub limits: Requested,
    pub priority: Priority,
    pub files: Vec<JobFile>,
    pub args: Vec<String>,
    /// Absent on messages from nodes older than test cases.
    #[serde(default)]
    pub tests: Vec<TestCase>,
    #[serde(default)]
    pub compare: Compare,
    /// Stdin stays open for input from the client (`live::Input`), as `GET /execute/ws` runs it.
    #[serde(default)]
    pub interactive: bool,
    #[serde(default)]
    pub callback_url: Option<String>,
    #[serde(default)]
    pub batch_id: Option<Uuid>,
    #[serde(default)]
    pub stderr_to_stdout: bool,
    #[serde(default)]
    pub compiler_options: Option<String>,
    #[serde(default)]
    pub echo: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// A submission resolved against this node's own definitions and bounds, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub submission: Submission,
    pub language: Language,
    pub limits: Limits,
    /// Each test case's wall-clock limit, resolved like the job's own.
    pub case_timeouts: Vec<std::time::Duration>,
}

impl Job {
    pub fn id(&self) -> Uuid {
        self.submission.execution_id
    }

    /// The longest the job may run: its compile step (if any) and the program (or each of
    /// its test cases, with a second each to set up), container start-up not included.
    pub fn time_budget(&self) -> std::time::Duration {
        let runs = match self.case_timeouts.len() {
            0 => self.limits.timeout,
            n => self.case_timeouts.iter().sum::<std::time::Duration>() + CASE_SETUP * n as u32,
        };
        match self.language.compile {
            Some(_) => runs + self.limits.compile_timeout,
            None => runs,
        }
    }

    /// How many runs in fresh namespaces the job takes: one, or its compile step and each of
    /// its test cases.
    pub fn steps(&self) -> u32 {
        let cases = self.submission.tests.len() as u32;
        match (cases, &self.language.compile) {
            (0, _) => 1,
            (n, Some(_)) => n + 1,
            (n, None) => n,
        }
    }

    /// The job of test case `index`: its stdin, args and timeout, no cases of its own.
    pub fn case(&self, index: usize) -> Job {
        let case = &self.submission.tests[index];
        let mut job = self.clone();
        job.submission.stdin = case.stdin.clone();
        if let Some(args) = &case.args {
            job.submission.args = args.clone();
        }
        job.submission.tests = Vec::new();
        job.limits.timeout = self.case_timeouts[index];
        job.case_timeouts = Vec::new();
        job
    }
}

/// What each test case adds to a job's time budget for its own sandbox.
const CASE_SETUP: std::time::Duration = std::time::Duration::from_secs(1);

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
    #[error("tests[{index}]: {source}")]
    InTest {
        index: usize,
        #[source]
        source: Box<ValidationError>,
    },
    #[error("package `{name}` is not available for {language}; allowed: {}", if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") })]
    Package {
        name: String,
        language: String,
        allowed: Vec<String>,
    },
}

impl ExecuteRequest {
    /// A request with every optional field at its default.
    pub fn new(language: impl Into<String>, code: impl Into<String>) -> Self {
        ExecuteRequest {
            language: language.into(),
            code: code.into(),
            stdin: String::new(),
            timeout: None,
            cpu_time: None,
            memory_limit: None,
            pids_limit: None,
            output_limit: None,
            file_size_limit: None,
            stack_limit: None,
            stderr_to_stdout: false,
            compiler_options: None,
            priority: Priority::Normal,
            execution_id: None,
            files: vec![],
            args: vec![],
            packages: vec![],
            tests: vec![],
            compare: Compare::Trim,
            callback_url: None,
            echo: None,
        }
    }

    /// Checks the request against this node's languages and bounds, refusing any limit out of
    /// range, and turns it into a job.
    pub fn validate(
        self,
        languages: &Languages,
        limits: &LimitsConfig,
    ) -> Result<Job, ValidationError> {
        let language = find_language(languages, &self.language)?;
        if let Some(name) = self
            .packages
            .iter()
            .find(|p| !language.packages.contains(p))
        {
            return Err(ValidationError::Package {
                name: name.clone(),
                language: language.name.clone(),
                allowed: language.packages.clone(),
            });
        }
        let submission = Submission {
            execution_id: self.execution_id.unwrap_or_else(Uuid::new_v4),
            language: self.language,
            code: self.code,
            stdin: self.stdin,
            limits: Requested {
                timeout: self.timeout,
                cpu_time: self.cpu_time,
                memory: self.memory_limit,
                pids: self.pids_limit,
                output: self.output_limit,
                file_size: self.file_size_limit,
                stack: self.stack_limit,
            },
            priority: self.priority,
            files: decode_files(self.files)?,
            args: self.args,
            tests: self.tests,
            compare: self.compare,
            interactive: false,
            callback_url: self.callback_url,
            batch_id: None,
            stderr_to_stdout: self.stderr_to_stdout,
            compiler_options: self.compiler_options,
            echo: self.echo,
            created_at: Utc::now(),
        };
        submission.resolve(languages, limits, Policy::Refuse)
    }
}

impl Submission {
    /// Resolves the submission against this node's languages and bounds. The API refuses a
    /// limit out of range (the client made a mistake); a worker clamps it (the API it came
    /// through may have other bounds, or none: a forged message).
    pub fn resolve(
        self,
        languages: &Languages,
        limits: &LimitsConfig,
        policy: Policy,
    ) -> Result<Job, ValidationError> {
        let language = find_language(languages, &self.language)?;
        if self.code.trim().is_empty() {
            return Err(ValidationError::Invalid {
                field: "code",
                message: "must not be empty".into(),
            });
        }
        check_size("code", &self.code, limits.max_code_bytes)?;
        check_size("stdin", &self.stdin, limits.max_stdin_bytes)?;
        check_args(&self.args, limits)?;
        check_compiler_options(self.compiler_options.as_deref(), &language)?;
        check_files(&self.files, &language.file, limits)?;
        let resolved = Limits::resolve(limits, &language.limits, &self.limits, policy)?;
        let case_timeouts = self.check_tests(&language, limits, policy)?;
        Ok(Job {
            submission: self,
            language,
            limits: resolved,
            case_timeouts,
        })
    }

    /// Checks the test cases and resolves each one's timeout within the same bounds as the
    /// job's own.
    fn check_tests(
        &self,
        language: &Language,
        limits: &LimitsConfig,
        policy: Policy,
    ) -> Result<Vec<std::time::Duration>, ValidationError> {
        if self.tests.is_empty() {
            return Ok(Vec::new());
        }
        if self.tests.len() > limits.max_tests {
            return Err(invalid(
                "tests",
                format!("at most {} test cases", limits.max_tests),
            ));
        }
        if !self.stdin.is_empty() {
            return Err(invalid(
                "stdin",
                "give each test case its own stdin instead",
            ));
        }
        if let Compare::Float(tolerance) = self.compare {
            if !(tolerance.is_finite() && tolerance >= 0.0) {
                return Err(invalid(
                    "compare",
                    "the float tolerance must be a number >= 0",
                ));
            }
        }
        let in_test = |index: usize| {
            move |source: ValidationError| ValidationError::InTest {
                index,
                source: Box::new(source),
            }
        };
        let mut timeouts = Vec::with_capacity(self.tests.len());
        for (index, case) in self.tests.iter().enumerate() {
            check_size("stdin", &case.stdin, limits.max_stdin_bytes).map_err(in_test(index))?;
            check_size(
                "expected_output",
                &case.expected_output,
                limits.max_stdin_bytes,
            )
            .map_err(in_test(index))?;
            if let Some(args) = &case.args {
                check_args(args, limits).map_err(in_test(index))?;
            }
            let requested = Requested {
                timeout: case.timeout.or(self.limits.timeout),
                ..self.limits.clone()
            };
            let resolved = Limits::resolve(limits, &language.limits, &requested, policy)
                .map_err(|e| in_test(index)(e.into()))?;
            timeouts.push(resolved.timeout);
        }
        Ok(timeouts)
    }
}

fn find_language(languages: &Languages, name: &str) -> Result<Language, ValidationError> {
    languages
        .get(name)
        .cloned()
        .ok_or_else(|| ValidationError::UnknownLanguage {
            name: name.to_string(),
            known: languages.names().iter().map(|s| s.to_string()).collect(),
        })
}

fn invalid(field: &'static str, message: impl Into<String>) -> ValidationError {
    ValidationError::Invalid {
        field,
        message: message.into(),
    }
}

fn check_args(args: &[String], limits: &LimitsConfig) -> Result<(), ValidationError> {
    if args.len() > limits.max_args {
        return Err(invalid(
            "args",
            format!("at most {} arguments", limits.max_args),
        ));
    }
    if args
        .iter()
        .any(|a| a.len() > limits.max_arg_bytes || a.contains('\0'))
    {
        return Err(invalid(
            "args",
            format!(
                "each argument at most {} bytes, without NUL",
                limits.max_arg_bytes
            ),
        ));
    }
    Ok(())
}

/// Options for the compile command: for compiled languages, short, and nothing the shell
/// would take as more than words.
fn check_compiler_options(
    options: Option<&str>,
    language: &Language,
) -> Result<(), ValidationError> {
    let Some(options) = options.filter(|o| !o.trim().is_empty()) else {
        return Ok(());
    };
    if language.compile.is_none() {
        return Err(invalid(
            "compiler_options",
            format!(
                "{} is not compiled: compiler options are only taken by compiled languages",
                language.name
            ),
        ));
    }
    if options.len() > MAX_COMPILER_OPTIONS || options.chars().any(|c| "$&;<>|`\n\r\0".contains(c))
    {
        return Err(invalid(
            "compiler_options",
            format!(
                "at most {MAX_COMPILER_OPTIONS} bytes, without any of $&;<>|`, newlines or NUL"
            ),
        ));
    }
    Ok(())
}

/// The longest `compiler_options` (Judge0's bound).
pub const MAX_COMPILER_OPTIONS: usize = 512;

/// Decodes the extra files' contents (UTF-8 or base64).
fn decode_files(files: Vec<SourceFile>) -> Result<Vec<JobFile>, ValidationError> {
    files
        .into_iter()
        .map(|file| {
            let content = match file.encoding {
                Encoding::Utf8 => file.content.into_bytes(),
                Encoding::Base64 => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(file.content.trim())
                        .map_err(|e| {
                            invalid("files", format!("`{}` is not valid base64: {e}", file.name))
                        })?
                }
            };
            Ok(JobFile {
                name: file.name,
                content,
            })
        })
        .collect()
}

/// Checks the extra files' names: relative, plain components (letters, digits, `.`, `_`,
/// `-`), no `..`, not the main file, no duplicates; and their count and total size.
fn check_files(
    files: &[JobFile],
    main: &str,
    limits: &LimitsConfig,
) -> Result<(), ValidationError> {
    if files.len() > limits.max_files {
        return Err(invalid(
            "files",
            format!("at most {} files", limits.max_files),
        ));
    }
    for (i, file) in files.iter().enumerate() {
        check_file_name(&file.name)?;
        if file.name == main || files[..i].iter().any(|f| f.name == file.name) {
            return Err(invalid(
                "files",
                format!(
                    "`{}` is given twice (the code itself is `{main}`)",
                    file.name
                ),
            ));
        }
    }
    let total: u64 = files.iter().map(|f| f.content.len() as u64).sum();
    if total > limits.max_files_bytes.bytes() {
        return Err(ValidationError::TooLarge {
            field: "files",
            size: total as usize,
            limit: limits.max_files_bytes.bytes(),
        });
    }
    Ok(())
}

fn check_file_name(name: &str) -> Result<(), ValidationError> {
    let plain = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
    };
    if name.len() > 128 || name.starts_with('/') || !name.split('/').all(plain) {
        return Err(invalid(
            "files",
            format!("`{name}` is not an allowed file name: use a relative path of letters, digits, `.`, `_` and `-`, without `..`"),
        ));
    }
    Ok(())
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
            version: job.language.version.clone(),
            language: job.language.name.clone(),
            ..ExecutionRecord::unresolved(&job.submission, status)
        }
    }

    /// A record for a submission no language of this node's was found for.
    fn unresolved(submission: &Submission, status: Status) -> Self {
        ExecutionRecord {
            execution_id: submission.execution_id,
            status,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_base64: None,
            stderr_base64: None,
            compile: None,
            duration_ms: None,
            cpu_time_ms: None,
            memory_peak_bytes: None,
            language: submission.language.clone(),
            version: String::new(),
            node: None,
            error: None,
            tests: None,
            verdict: None,
            callback_url: submission.callback_url.clone(),
            callback: None,
            batch_id: submission.batch_id,
            echo: submission.echo.clone(),
            created_at: submission.created_at,
            started_at: None,
            finished_at: None,
        }
    }

    pub fn internal_error(job: &Job, reason: impl Into<String>) -> Self {
        ExecutionRecord::new(job, Status::Queued).failed(reason)
    }

    /// The record of a job message this node would not run (see [`Submission::resolve`]).
    pub fn refused(submission: &Submission, why: &ValidationError) -> Self {
        ExecutionRecord::unresolved(submission, Status::Queued)
            .failed(format!("the worker refused the job message: {why}"))
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
        assert_eq!(job.limits.memory, LimitsConfig::default().memory.default);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let langs = Languages::load(None).unwrap();
        let cfg = LimitsConfig::default();
        let err = request(r#"{"language":"brainfuck","code":"x"}"#)
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
        let err = ExecuteRequest::new("python", big)
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
            r#"{"language":"python","code":"x","network":true}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `network`"));
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

#[cfg(test)]
mod file_tests {
    use super::*;

    fn job(files: serde_json::Value) -> Result<Job, ValidationError> {
        let request: ExecuteRequest = serde_json::from_value(serde_json::json!({
            "language": "python", "code": "print(1)", "files": files
        }))
        .unwrap();
        request.validate(&Languages::load(None).unwrap(), &LimitsConfig::default())
    }

    #[test]
    fn files_decode_from_utf8_and_base64() {
        let job = job(serde_json::json!([
            {"name": "util.py", "content": "X = 1"},
            {"name": "data/blob.bin", "content": "AAEC/w==", "encoding": "base64"}
        ]))
        .unwrap();
        assert_eq!(job.submission.files[0].content, b"X = 1");
        assert_eq!(job.submission.files[1].content, [0, 1, 2, 255]);
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            ".",
            "x y",
            "a\\b",
            "main.py",
            "",
        ] {
            let err = job(serde_json::json!([{"name": name, "content": ""}])).unwrap_err();
            assert!(
                matches!(err, ValidationError::Invalid { field: "files", .. }),
                "{name}: {err}"
            );
        }
        let err =
            job(serde_json::json!([{"name": "b.bin", "content": "%%%", "encoding": "base64"}]))
                .unwrap_err();
        assert!(err.to_string().contains("not valid base64"));
    }

    #[test]
    fn too_many_or_too_large_files_are_refused() {
        let many: Vec<_> = (0..21)
            .map(|i| serde_json::json!({"name": format!("f{i}.py"), "content": ""}))
            .collect();
        assert!(matches!(
            job(serde_json::json!(many)),
            Err(ValidationError::Invalid { field: "files", .. })
        ));
        let big = "x".repeat(1024 * 1024 + 1);
        assert!(matches!(
            job(serde_json::json!([{"name": "big.txt", "content": big}])),
            Err(ValidationError::TooLarge { field: "files", .. })
        ));
    }

    #[test]
    fn only_allowed_packages_pass() {
        let langs = Languages::load(None).unwrap();
        let request = |pkgs: serde_json::Value| -> ExecuteRequest {
            serde_json::from_value(
                serde_json::json!({"language": "python", "code": "x", "packages": pkgs}),
            )
            .unwrap()
        };
        assert!(request(serde_json::json!(["numpy"]))
            .validate(&langs, &LimitsConfig::default())
            .is_ok());
        let err = request(serde_json::json!(["numpy", "tensorflow"]))
            .validate(&langs, &LimitsConfig::default())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("`tensorflow` is not available for python; allowed: numpy, pandas"),
            "{err}"
        );
    }
}
