//! Judge0's fourteen statuses, and how a CodeBeaker record maps onto them: by Judge0's own
//! rules (a signal picks the runtime error, a CPU time over the limit is too slow even when
//! the extra time let the program finish, the expected output is compared with trailing
//! whitespace ignored).

use serde::Serialize;

use super::submission::Echo;
use crate::live::signal_number;
use crate::model::{ExecutionRecord, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Judge0Status {
    pub id: u8,
    pub description: &'static str,
}

const fn status(id: u8, description: &'static str) -> Judge0Status {
    Judge0Status { id, description }
}

pub const IN_QUEUE: Judge0Status = status(1, "In Queue");
pub const PROCESSING: Judge0Status = status(2, "Processing");
pub const ACCEPTED: Judge0Status = status(3, "Accepted");
pub const WRONG_ANSWER: Judge0Status = status(4, "Wrong Answer");
pub const TIME_LIMIT_EXCEEDED: Judge0Status = status(5, "Time Limit Exceeded");
pub const COMPILATION_ERROR: Judge0Status = status(6, "Compilation Error");
pub const SIGSEGV: Judge0Status = status(7, "Runtime Error (SIGSEGV)");
pub const SIGXFSZ: Judge0Status = status(8, "Runtime Error (SIGXFSZ)");
pub const SIGFPE: Judge0Status = status(9, "Runtime Error (SIGFPE)");
pub const SIGABRT: Judge0Status = status(10, "Runtime Error (SIGABRT)");
pub const NZEC: Judge0Status = status(11, "Runtime Error (NZEC)");
pub const OTHER: Judge0Status = status(12, "Runtime Error (Other)");
pub const INTERNAL_ERROR: Judge0Status = status(13, "Internal Error");
pub const EXEC_FORMAT_ERROR: Judge0Status = status(14, "Exec Format Error");

pub const ALL: [Judge0Status; 14] = [
    IN_QUEUE,
    PROCESSING,
    ACCEPTED,
    WRONG_ANSWER,
    TIME_LIMIT_EXCEEDED,
    COMPILATION_ERROR,
    SIGSEGV,
    SIGXFSZ,
    SIGFPE,
    SIGABRT,
    NZEC,
    OTHER,
    INTERNAL_ERROR,
    EXEC_FORMAT_ERROR,
];

const SIGKILL: i64 = 9;
const SIGXFSZ_NUMBER: i64 = 25;

/// A record judged as Judge0 would: its status, exit code, signal and isolate-style message.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub status: Judge0Status,
    pub exit_code: Option<i64>,
    pub exit_signal: Option<i64>,
    pub message: Option<String>,
}

impl Judged {
    fn new(
        status: Judge0Status,
        exit_code: Option<i64>,
        signal: Option<i64>,
        message: Option<String>,
    ) -> Judged {
        Judged {
            status,
            exit_code,
            exit_signal: signal,
            message,
        }
    }
}

pub fn judge(record: &ExecutionRecord, echo: &Echo) -> Judged {
    let signal = record
        .signal
        .as_deref()
        .and_then(signal_number)
        .map(i64::from);
    let message = |text: &str| Some(text.to_string());
    match record.status {
        Status::Queued => Judged::new(IN_QUEUE, None, None, None),
        Status::Running => Judged::new(PROCESSING, None, None, None),
        Status::CompileError => Judged::new(COMPILATION_ERROR, None, None, None),
        Status::TimeLimitExceeded => Judged::new(
            TIME_LIMIT_EXCEEDED,
            Some(0),
            signal,
            message("Time limit exceeded"),
        ),
        // Judge0's memory limit is its cgroup's: the kernel kills the program.
        Status::MemoryLimitExceeded => Judged::new(
            OTHER,
            Some(0),
            Some(SIGKILL),
            message("Memory limit exceeded (killed with signal 9)"),
        ),
        // Judge0's output is a file under its file size limit: writing past it is SIGXFSZ.
        Status::OutputLimitExceeded => Judged::new(
            SIGXFSZ,
            Some(0),
            Some(SIGXFSZ_NUMBER),
            message("Output limit exceeded (caught fatal signal 25)"),
        ),
        Status::Cancelled => Judged::new(INTERNAL_ERROR, None, None, message("cancelled")),
        Status::InternalError => Judged::new(INTERNAL_ERROR, None, None, record.error.clone()),
        Status::Completed => completed(record, echo, signal),
    }
}

/// A program that ended by itself: killed by a signal, failed, too slow, or judged.
fn completed(record: &ExecutionRecord, echo: &Echo, signal: Option<i64>) -> Judged {
    if let Some(signal) = signal {
        let status = match signal {
            11 => SIGSEGV,
            25 => SIGXFSZ,
            8 => SIGFPE,
            6 => SIGABRT,
            _ => OTHER,
        };
        // Isolate reports no exit code for a signalled program; Judge0 writes 0.
        let message = format!("Caught fatal signal {signal}");
        return Judged::new(status, Some(0), Some(signal), Some(message));
    }
    let code = record.exit_code.unwrap_or(0);
    if code != 0 {
        let message = format!("Exited with error status {code}");
        return Judged::new(NZEC, Some(code), None, Some(message));
    }
    let cpu_seconds = record.cpu_time_ms.unwrap_or(0) as f64 / 1000.0;
    if echo.language_id.is_some() && cpu_seconds > echo.cpu_time_limit {
        return Judged::new(
            TIME_LIMIT_EXCEEDED,
            Some(0),
            None,
            Some("Time limit exceeded".into()),
        );
    }
    let status = match &echo.expected_output {
        Some(expected) if !super::render::matches(expected, &record.stdout) => WRONG_ANSWER,
        _ => ACCEPTED,
    };
    Judged::new(status, Some(0), None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        status: Status,
        exit_code: Option<i64>,
        signal: Option<&str>,
        stdout: &str,
    ) -> ExecutionRecord {
        let mut record: ExecutionRecord = serde_json::from_value(serde_json::json!({
            "execution_id": uuid::Uuid::new_v4(), "status": status, "exit_code": exit_code,
            "signal": signal, "stdout": stdout, "stderr": "", "stdout_truncated": false,
            "stderr_truncated": false, "compile": null, "duration_ms": 5, "cpu_time_ms": 3,
            "memory_peak_bytes": 1024, "language": "c", "version": "12", "node": null,
            "created_at": "2026-12-04T18:00:00Z", "started_at": null, "finished_at": null
        }))
        .unwrap();
        record.cpu_time_ms = Some(3);
        record
    }

    fn echo(expected: Option<&str>) -> Echo {
        Echo {
            language_id: Some(50),
            cpu_time_limit: 2.0,
            expected_output: expected.map(str::to_string),
            ..Echo::default()
        }
    }

    #[test]
    fn each_ending_gets_judge0s_status() {
        let judged = |r: &ExecutionRecord, e: &Echo| judge(r, e).status.id;
        let none = echo(None);
        assert_eq!(
            judged(&record(Status::Completed, Some(0), None, "x"), &none),
            3
        );
        assert_eq!(
            judged(
                &record(Status::Completed, Some(0), None, "x \n"),
                &echo(Some("x"))
            ),
            3
        );
        assert_eq!(
            judged(
                &record(Status::Completed, Some(0), None, "y"),
                &echo(Some("x"))
            ),
            4
        );
        assert_eq!(
            judged(&record(Status::Completed, Some(1), None, ""), &none),
            11
        );
        let segv = judge(
            &record(Status::Completed, Some(139), Some("SIGSEGV"), ""),
            &none,
        );
        assert_eq!((segv.status, segv.exit_signal), (SIGSEGV, Some(11)));
        assert_eq!(
            judged(
                &record(Status::Completed, Some(136), Some("SIGFPE"), ""),
                &none
            ),
            9
        );
        assert_eq!(
            judged(
                &record(Status::Completed, Some(134), Some("SIGABRT"), ""),
                &none
            ),
            10
        );
        assert_eq!(
            judged(&record(Status::TimeLimitExceeded, None, None, ""), &none),
            5
        );
        assert_eq!(
            judged(&record(Status::CompileError, None, None, ""), &none),
            6
        );
        assert_eq!(
            judged(&record(Status::MemoryLimitExceeded, None, None, ""), &none),
            12
        );
        assert_eq!(
            judged(&record(Status::OutputLimitExceeded, None, None, ""), &none),
            8
        );
        assert_eq!(
            judged(&record(Status::InternalError, None, None, ""), &none),
            13
        );
        assert_eq!(judged(&record(Status::Queued, None, None, ""), &none), 1);
        assert_eq!(judged(&record(Status::Running, None, None, ""), &none), 2);
    }

    #[test]
    fn cpu_time_past_the_limit_is_too_slow_even_when_the_extra_time_let_it_finish() {
        let mut slow = record(Status::Completed, Some(0), None, "x");
        slow.cpu_time_ms = Some(2500);
        assert_eq!(judge(&slow, &echo(None)).status, TIME_LIMIT_EXCEEDED);
    }

    #[test]
    fn the_fourteen_statuses_are_numbered_in_order() {
        for (i, status) in ALL.iter().enumerate() {
            assert_eq!(status.id as usize, i + 1);
        }
    }
}
