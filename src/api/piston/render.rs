//! A record as Piston's result: `{language, version, run, compile?}`, each stage with its
//! output, exit code, signal, Piston's status (`RE`, `SG`, `TO`, `OL`, `EL`, `XX`, absent on
//! success) and measurements.

use serde_json::{json, Value};

use super::runtimes::Runtime;
use crate::model::{CompileResult, ExecutionRecord, Status};

pub fn result(record: &ExecutionRecord, runtime: &Runtime) -> Value {
    let compile = runtime
        .compiled
        .then(|| record.compile.as_ref().map(compile))
        .flatten();
    // Piston answers a failed compile with the compile stage as the run, too.
    let run = match (&compile, record.status) {
        (Some(compile), Status::CompileError) => compile.clone(),
        _ => run(record),
    };
    let mut result = json!({
        "language": runtime.language,
        "version": runtime.version,
        "run": run,
    });
    if let Some(compile) = compile {
        result["compile"] = compile;
    }
    result
}

/// The run stage.
pub fn run(record: &ExecutionRecord) -> Value {
    let killed = Some("SIGKILL".to_string());
    let (status, signal, message): (Option<&str>, Option<String>, Option<String>) = match record
        .status
    {
        Status::TimeLimitExceeded => (Some("TO"), killed, Some("Time limit exceeded".into())),
        Status::OutputLimitExceeded if record.stdout_truncated => {
            (Some("OL"), killed, Some("stdout length exceeded".into()))
        }
        Status::OutputLimitExceeded => (Some("EL"), killed, Some("stderr length exceeded".into())),
        Status::MemoryLimitExceeded => (Some("SG"), killed, Some("Memory limit exceeded".into())),
        Status::Cancelled => (Some("XX"), killed, Some("cancelled".into())),
        Status::InternalError => (Some("XX"), None, record.error.clone()),
        _ => match (&record.signal, record.exit_code) {
            (Some(signal), _) => (
                Some("SG"),
                Some(signal.clone()),
                Some(format!("Caught fatal signal {signal}")),
            ),
            (None, Some(code)) if code != 0 => (
                Some("RE"),
                None,
                Some(format!("Exited with error status {code}")),
            ),
            _ => (None, None, None),
        },
    };
    // A program that ended by a signal has no exit code.
    let code = match signal {
        Some(_) => None,
        None => record.exit_code,
    };
    stage(Stage {
        stdout: &record.stdout,
        stderr: &record.stderr,
        code,
        signal,
        message,
        status,
        cpu_time: record.cpu_time_ms,
        wall_time: record.duration_ms,
        memory: record.memory_peak_bytes,
    })
}

fn compile(c: &CompileResult) -> Value {
    let (status, signal) = match (c.timed_out, c.exit_code) {
        (true, _) => (Some("TO"), Some("SIGKILL".to_string())),
        (false, Some(0)) => (None, None),
        (false, _) => (Some("RE"), None),
    };
    stage(Stage {
        stdout: &c.stdout,
        stderr: &c.stderr,
        code: c.exit_code,
        signal,
        message: status.map(|_| match c.exit_code {
            Some(code) => format!("Exited with error status {code}"),
            None => "Time limit exceeded".into(),
        }),
        status,
        cpu_time: None,
        wall_time: Some(c.duration_ms),
        memory: None,
    })
}

struct Stage<'a> {
    stdout: &'a str,
    stderr: &'a str,
    code: Option<i64>,
    signal: Option<String>,
    message: Option<String>,
    status: Option<&'a str>,
    cpu_time: Option<u64>,
    wall_time: Option<u64>,
    memory: Option<u64>,
}

/// One stage as Piston writes it. `output` is both streams; Piston interleaves them as they
/// came, which a record does not keep, so here stdout comes first.
fn stage(s: Stage) -> Value {
    json!({
        "stdout": s.stdout,
        "stderr": s.stderr,
        "output": format!("{}{}", s.stdout, s.stderr),
        "code": s.code,
        "signal": s.signal,
        "message": s.message,
        "status": s.status,
        "cpu_time": s.cpu_time,
        "wall_time": s.wall_time,
        "memory": s.memory,
    })
}
