//! From how an execution ended to the status and record a client sees.

use chrono::Utc;

use super::bootstrap;
use super::execute::{Ending, Outcome};
use crate::model::{CompileResult, ExecutionRecord, Status};

impl Outcome {
    /// The status, decided from facts the node or Docker observed, never guessed from an exit
    /// code: a client should not have to interpret 137.
    pub fn status(&self) -> Status {
        let compile_failed = self.compiled.as_ref().is_some_and(|c| c.exit_code != 0);
        if self.compile_timed_out || compile_failed {
            return Status::CompileError;
        }
        match self.ending {
            Ending::TimedOut => Status::TimeLimitExceeded,
            Ending::OutputLimit => Status::OutputLimitExceeded,
            Ending::Cancelled => Status::Cancelled,
            Ending::Exited if self.stdout.truncated || self.stderr.truncated => {
                Status::OutputLimitExceeded
            }
            Ending::Exited if self.oom_killed => Status::MemoryLimitExceeded,
            Ending::Exited if self.hit_cpu_limit() => Status::TimeLimitExceeded,
            Ending::Exited if self.report.is_some() => Status::Completed,
            Ending::Exited => Status::InternalError,
        }
    }

    /// The final record, built on the running one (which carries the node and start time).
    pub fn into_record(self, running: ExecutionRecord) -> ExecutionRecord {
        let status = self.status();
        let exit_code = self.report.map(|r| r.exit_code);
        let compile = self.compile_result();
        let (stdout, stdout_base64) = self.stdout.text();
        let (stderr, stderr_base64) = self.stderr.text();
        let error = (status == Status::InternalError).then(|| match self.container_exit {
            Some(bootstrap::EXIT_NO_NONCE | bootstrap::EXIT_UNPACK_FAILED) => {
                "the job's files could not be unpacked in the container".to_string()
            }
            code => format!(
                "the container ended without its final report (exit code {})",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
        });
        ExecutionRecord {
            status,
            exit_code,
            signal: exit_code.and_then(signal_name).map(str::to_string),
            stdout,
            stderr,
            stdout_base64,
            stderr_base64,
            stdout_truncated: self.stdout.truncated,
            stderr_truncated: self.stderr.truncated,
            compile,
            duration_ms: (status != Status::CompileError)
                .then_some(self.duration.as_millis() as u64),
            cpu_time_ms: self
                .report
                .and_then(|r| r.cpu_time)
                .map(|t| t.as_millis() as u64),
            memory_peak_bytes: self.report.and_then(|r| r.memory_peak_bytes),
            error,
            finished_at: Some(Utc::now()),
            ..running
        }
    }
}

impl Outcome {
    /// Killed by RLIMIT_CPU: SIGXCPU at the limit, or SIGKILL a second later for a program that
    /// ignores SIGXCPU.
    fn hit_cpu_limit(&self) -> bool {
        self.report.is_some_and(|r| {
            let signal = signal_name(r.exit_code);
            let spent = r.cpu_time.unwrap_or_default();
            signal == Some("SIGXCPU") || (signal == Some("SIGKILL") && spent >= self.cpu_limit)
        })
    }

    fn compile_result(&self) -> Option<CompileResult> {
        if self.compile_timed_out {
            return Some(CompileResult {
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                exit_code: None,
                timed_out: true,
                duration_ms: self.duration.as_millis() as u64,
            });
        }
        let c = self.compiled.as_ref()?;
        // The bootstrap runs the compiler under timeout(1), which exits 124 when it fired.
        let timed_out = c.exit_code == TIMEOUT_EXIT;
        Some(CompileResult {
            stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
            stdout_truncated: c.stdout_truncated,
            stderr_truncated: c.stderr_truncated,
            exit_code: (!timed_out).then_some(c.exit_code),
            timed_out,
            duration_ms: c.duration_ms,
        })
    }
}

const TIMEOUT_EXIT: i64 = 124;

/// The signal behind a shell exit status of 128+n.
fn signal_name(exit_code: i64) -> Option<&'static str> {
    Some(match exit_code.checked_sub(128)? {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::bootstrap::Report;
    use crate::sandbox::output::Capped;

    fn outcome(ending: Ending, report: Option<i64>) -> Outcome {
        Outcome {
            ending,
            container_exit: report,
            oom_killed: false,
            compiled: None,
            compile_timed_out: false,
            cpu_limit: Duration::from_secs(1),
            report: report.map(|exit_code| Report {
                exit_code,
                memory_peak_bytes: Some(1),
                cpu_time: Some(Duration::ZERO),
                oom_kills: Some(0),
            }),
            stdout: Capped::new(4),
            stderr: Capped::new(4),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn statuses_follow_what_was_observed() {
        assert_eq!(outcome(Ending::Exited, Some(3)).status(), Status::Completed);
        assert_eq!(
            outcome(Ending::TimedOut, None).status(),
            Status::TimeLimitExceeded
        );
        assert_eq!(
            outcome(Ending::OutputLimit, None).status(),
            Status::OutputLimitExceeded
        );
        let mut oom = outcome(Ending::Exited, Some(137));
        oom.oom_killed = true;
        assert_eq!(oom.status(), Status::MemoryLimitExceeded);
        let mut flood = outcome(Ending::Exited, Some(0));
        flood.stderr.push(b"12345");
        assert_eq!(flood.status(), Status::OutputLimitExceeded);
        assert_eq!(
            outcome(Ending::Exited, None).status(),
            Status::InternalError
        );
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(137), Some("SIGKILL"));
        assert_eq!(signal_name(153), Some("SIGXFSZ"));
        assert_eq!(signal_name(1), None);
        assert_eq!(signal_name(0), None);
    }
}
