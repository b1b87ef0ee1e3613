//! From how an execution ended to the status and record a client sees.

use chrono::Utc;
use codebeaker_cell::protocol::{Ending, Exit, Report};

use super::execute::Outcome;
use crate::model::{CompileResult, ExecutionRecord, Status};

impl Outcome {
    /// The status, decided from facts the executor or the node observed, never guessed from an
    /// exit code: a client should not have to interpret 137.
    pub fn status(&self) -> Status {
        if self.compiled.as_ref().is_some_and(|c| !c.succeeded()) {
            return Status::CompileError;
        }
        let Some(report) = &self.report else {
            return match (self.node_timed_out, self.cell_oom) {
                (true, _) => Status::TimeLimitExceeded,
                (false, true) => Status::MemoryLimitExceeded,
                (false, false) => Status::InternalError,
            };
        };
        match report.ending {
            Ending::TimedOut | Ending::CpuTime => Status::TimeLimitExceeded,
            Ending::OutputLimit => Status::OutputLimitExceeded,
            Ending::Killed => Status::Cancelled,
            Ending::CompileFailed => Status::CompileError,
            Ending::Exited if report.stdout_truncated || report.stderr_truncated => {
                Status::OutputLimitExceeded
            }
            Ending::Exited if report.oom_kills.unwrap_or(0) > 0 => Status::MemoryLimitExceeded,
            Ending::Exited if self.hit_cpu_limit(report) => Status::TimeLimitExceeded,
            Ending::Exited => Status::Completed,
        }
    }

    /// The final record, built on the running one (which carries the node and start time).
    pub fn into_record(self, running: ExecutionRecord) -> ExecutionRecord {
        let status = self.status();
        let exit_code = self
            .report
            .as_ref()
            .and_then(|r| r.exit)
            .map(Exit::shell_code);
        let compile = self.compile_result();
        let (stdout, stdout_base64) = self.stdout.text();
        let (stderr, stderr_base64) = self.stderr.text();
        let error = (status == Status::InternalError).then(|| {
            self.failure
                .clone()
                .unwrap_or_else(|| "the cell ended without its report".into())
        });
        let report = self.report.as_ref();
        ExecutionRecord {
            status,
            exit_code,
            signal: exit_code.and_then(signal_name).map(str::to_string),
            stdout,
            stderr,
            stdout_base64,
            stderr_base64,
            stdout_truncated: self.stdout.truncated || report.is_some_and(|r| r.stdout_truncated),
            stderr_truncated: self.stderr.truncated || report.is_some_and(|r| r.stderr_truncated),
            compile,
            duration_ms: (status != Status::CompileError).then(|| report.map_or(0, |r| r.wall_ms)),
            cpu_time_ms: report.and_then(|r| r.cpu_ns).map(|ns| ns / 1_000_000),
            memory_peak_bytes: report.and_then(|r| r.memory_peak_bytes),
            error,
            finished_at: Some(Utc::now()),
            ..running
        }
    }
}

impl Outcome {
    /// Killed by RLIMIT_CPU: SIGXCPU at the limit, or SIGKILL a second later for a program that
    /// ignores SIGXCPU.
    fn hit_cpu_limit(&self, report: &Report) -> bool {
        let spent = report
            .cpu_ns
            .map(std::time::Duration::from_nanos)
            .unwrap_or_default();
        match report.exit {
            Some(Exit::Signal(libc_signal::XCPU)) => true,
            Some(Exit::Signal(libc_signal::KILL)) => spent >= self.cpu_limit,
            _ => false,
        }
    }

    pub fn compile_result(&self) -> Option<CompileResult> {
        let c = self.compiled.as_ref()?;
        let timed_out = c.exit.is_none();
        Some(CompileResult {
            stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
            stdout_truncated: c.stdout_truncated,
            stderr_truncated: c.stderr_truncated,
            exit_code: c.exit.map(Exit::shell_code),
            timed_out,
            duration_ms: c.duration_ms,
        })
    }
}

/// The signal numbers the status rules look at.
mod libc_signal {
    pub const KILL: i32 = 9;
    pub const XCPU: i32 = 24;
}

/// The signal behind a shell exit status of 128+n.
fn signal_name(exit_code: i64) -> Option<&'static str> {
    crate::live::signal_name(i32::try_from(exit_code.checked_sub(128)?).ok()?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::output::Capped;

    fn outcome(ending: Ending, exit: Option<Exit>) -> Outcome {
        Outcome {
            report: Some(Report {
                ending,
                exit,
                wall_ms: 5,
                cpu_ns: Some(0),
                memory_peak_bytes: Some(1),
                oom_kills: Some(0),
                stdout_truncated: false,
                stderr_truncated: false,
            }),
            compiled: None,
            work: None,
            failure: None,
            node_timed_out: false,
            cell_oom: false,
            cpu_limit: Duration::from_secs(1),
            stdout: Capped::new(4),
            stderr: Capped::new(4),
        }
    }

    #[test]
    fn statuses_follow_what_was_observed() {
        let exited = |code| outcome(Ending::Exited, Some(code));
        assert_eq!(exited(Exit::Code(3)).status(), Status::Completed);
        assert_eq!(
            exited(Exit::Signal(9)).status(),
            Status::Completed,
            "kill -9 of itself"
        );
        assert_eq!(exited(Exit::Signal(24)).status(), Status::TimeLimitExceeded);
        assert_eq!(
            outcome(Ending::TimedOut, None).status(),
            Status::TimeLimitExceeded
        );
        assert_eq!(
            outcome(Ending::CpuTime, None).status(),
            Status::TimeLimitExceeded
        );
        assert_eq!(
            outcome(Ending::OutputLimit, None).status(),
            Status::OutputLimitExceeded
        );
        assert_eq!(outcome(Ending::Killed, None).status(), Status::Cancelled);
        let mut oom = exited(Exit::Signal(9));
        oom.report.as_mut().unwrap().oom_kills = Some(1);
        assert_eq!(oom.status(), Status::MemoryLimitExceeded);
        let mut silent = exited(Exit::Code(0));
        silent.report = None;
        assert_eq!(silent.status(), Status::InternalError);
        silent.cell_oom = true;
        assert_eq!(silent.status(), Status::MemoryLimitExceeded);
        silent.node_timed_out = true;
        assert_eq!(silent.status(), Status::TimeLimitExceeded);
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(137), Some("SIGKILL"));
        assert_eq!(signal_name(153), Some("SIGXFSZ"));
        assert_eq!(signal_name(1), None);
        assert_eq!(signal_name(0), None);
    }
}
