//! Test cases: what a request's `tests` carry, how a case's output is compared with what it
//! expects, and the verdicts. Pure: the worker runs the cases (compiling once, then one fresh
//! sandbox per case) and hands each case's record here.

use serde::{Deserialize, Serialize};

use chrono::Utc;

use crate::model::{CompileResult, ExecutionRecord, Status};

/// One case: the program runs with this stdin (and args, and timeout) and should print
/// `expected_output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    #[serde(default)]
    pub stdin: String,
    pub expected_output: String,
    /// The program's arguments for this case; the request's `args` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Wall-clock seconds for this case; the request's `timeout` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// How a case's stdout is held against its expected output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// Byte for byte.
    Exact,
    /// Trailing whitespace of each line, and empty lines at the end, do not count.
    #[default]
    Trim,
    /// The same whitespace-separated tokens.
    Tokens,
    /// Tokens; those that are both numbers may differ by the tolerance, absolute or relative
    /// to the expected value (`{"float": 1e-6}`).
    Float(f64),
}

impl Compare {
    pub fn is_default(&self) -> bool {
        *self == Compare::Trim
    }

    pub fn matches(&self, expected: &str, actual: &str) -> bool {
        match *self {
            Compare::Exact => expected == actual,
            Compare::Trim => trimmed_lines(expected).eq(trimmed_lines(actual)),
            Compare::Tokens => expected.split_whitespace().eq(actual.split_whitespace()),
            Compare::Float(tolerance) => {
                let (e, a): (Vec<_>, Vec<_>) = (
                    expected.split_whitespace().collect(),
                    actual.split_whitespace().collect(),
                );
                e.len() == a.len() && e.iter().zip(&a).all(|(e, a)| close(e, a, tolerance))
            }
        }
    }
}

/// The lines without trailing whitespace, and without the empty lines that end the text.
fn trimmed_lines(text: &str) -> impl Iterator<Item = &str> {
    text.trim_end().lines().map(str::trim_end)
}

fn close(expected: &str, actual: &str, tolerance: f64) -> bool {
    match (expected.parse::<f64>(), actual.parse::<f64>()) {
        (Ok(e), Ok(a)) if e.is_finite() && a.is_finite() => {
            let diff = (e - a).abs();
            diff <= tolerance || diff <= tolerance * e.abs()
        }
        _ => expected == actual,
    }
}

/// How one case went, or (overall) the first case that did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    WrongAnswer,
    /// The program exited with a non-zero code, or was ended by a signal.
    RuntimeError,
    TimeLimitExceeded,
    MemoryLimitExceeded,
    OutputLimitExceeded,
    CompileError,
    Cancelled,
    InternalError,
}

impl Verdict {
    /// The name the records use, e.g. `wrong_answer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accepted => "accepted",
            Verdict::WrongAnswer => "wrong_answer",
            Verdict::RuntimeError => "runtime_error",
            Verdict::TimeLimitExceeded => "time_limit_exceeded",
            Verdict::MemoryLimitExceeded => "memory_limit_exceeded",
            Verdict::OutputLimitExceeded => "output_limit_exceeded",
            Verdict::CompileError => "compile_error",
            Verdict::Cancelled => "cancelled",
            Verdict::InternalError => "internal_error",
        }
    }

    /// The first verdict that is not `accepted`, else `accepted`.
    pub fn overall(cases: &[TestResult]) -> Verdict {
        cases
            .iter()
            .map(|c| c.verdict)
            .find(|v| *v != Verdict::Accepted)
            .unwrap_or(Verdict::Accepted)
    }

    /// The verdict a run ending in `status` gets, before its output is compared.
    fn of_status(status: Status) -> Option<Verdict> {
        Some(match status {
            Status::Completed => return None,
            Status::TimeLimitExceeded => Verdict::TimeLimitExceeded,
            Status::MemoryLimitExceeded => Verdict::MemoryLimitExceeded,
            Status::OutputLimitExceeded => Verdict::OutputLimitExceeded,
            Status::CompileError => Verdict::CompileError,
            Status::Cancelled => Verdict::Cancelled,
            Status::InternalError | Status::Queued | Status::Running => Verdict::InternalError,
        })
    }
}

/// One case's run, as the record shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestResult {
    pub verdict: Verdict,
    pub status: Status,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub duration_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_peak_bytes: Option<u64>,
    /// Why the case ended in `internal_error`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

impl TestResult {
    /// Judges one case from the record of its run.
    pub fn judge(run: ExecutionRecord, case: &TestCase, compare: Compare) -> TestResult {
        let verdict = Verdict::of_status(run.status).unwrap_or_else(|| {
            match (
                run.exit_code,
                compare.matches(&case.expected_output, &run.stdout),
            ) {
                (Some(0), true) => Verdict::Accepted,
                (Some(0), false) => Verdict::WrongAnswer,
                _ => Verdict::RuntimeError,
            }
        });
        TestResult {
            verdict,
            status: run.status,
            exit_code: run.exit_code,
            signal: run.signal,
            stdout: run.stdout,
            stderr: run.stderr,
            stdout_truncated: run.stdout_truncated,
            stderr_truncated: run.stderr_truncated,
            duration_ms: run.duration_ms,
            cpu_time_ms: run.cpu_time_ms,
            memory_peak_bytes: run.memory_peak_bytes,
            error: run.error,
        }
    }
}

/// The record of a request whose cases never ran (it did not compile, or could not be set
/// up): its verdict is how it ended.
pub fn unrun(record: ExecutionRecord) -> ExecutionRecord {
    let verdict = Verdict::of_status(record.status).unwrap_or(Verdict::InternalError);
    ExecutionRecord {
        tests: Some(Vec::new()),
        verdict: Some(verdict),
        ..record
    }
}

/// The record of a request whose cases ran: every case, the overall verdict, and the totals
/// (time and CPU summed over the cases, memory the highest peak).
pub fn summary(
    running: ExecutionRecord,
    compile: Option<CompileResult>,
    cases: Vec<TestResult>,
    cancelled: bool,
) -> ExecutionRecord {
    let (status, verdict) = match cancelled {
        true => (Status::Cancelled, Verdict::Cancelled),
        false => (Status::Completed, Verdict::overall(&cases)),
    };
    ExecutionRecord {
        status,
        verdict: Some(verdict),
        compile,
        duration_ms: Some(cases.iter().filter_map(|c| c.duration_ms).sum()),
        cpu_time_ms: cases.iter().map(|c| c.cpu_time_ms).sum(),
        memory_peak_bytes: cases.iter().filter_map(|c| c.memory_peak_bytes).max(),
        finished_at: Some(Utc::now()),
        tests: Some(cases),
        ..running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn verdict_names_are_the_ones_records_carry() {
        use Verdict as V;
        for v in [
            V::Accepted,
            V::WrongAnswer,
            V::RuntimeError,
            V::TimeLimitExceeded,
            V::MemoryLimitExceeded,
            V::OutputLimitExceeded,
            V::CompileError,
            V::Cancelled,
            V::InternalError,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
    }

    #[test]
    fn trim_ignores_trailing_whitespace_per_line_and_at_the_end_only() {
        let trim = Compare::Trim;
        assert!(trim.matches("1 2\n3\n", "1 2  \n3\t\n\n\n"));
        assert!(trim.matches("a", "a\n"));
        assert!(trim.matches("", "\n \n"));
        assert!(!trim.matches("1 2\n3", "1  2\n3"), "inner spaces count");
        assert!(!trim.matches("a\nb", "a\n\nb"), "inner empty lines count");
        assert!(!trim.matches("a", " a"), "leading spaces count");
        assert!(!trim.matches("a\n", ""));
    }

    #[test]
    fn exact_tokens_and_float() {
        assert!(Compare::Exact.matches("a\n", "a\n"));
        assert!(!Compare::Exact.matches("a\n", "a"));
        assert!(Compare::Tokens.matches("1 2\n3", " 1\n2   3 \n"));
        assert!(!Compare::Tokens.matches("1 2 3", "1 2"));
        let float = Compare::Float(1e-3);
        assert!(float.matches("3.1416 x", "3.14159 x"));
        assert!(
            float.matches("1000000", "1000100"),
            "relative to the expected value"
        );
        assert!(!float.matches("3.1416", "3.15"));
        assert!(!float.matches("x 1", "y 1"), "words must be equal");
        assert!(!float.matches("1 2", "1"));
        assert!(
            float.matches("NaN", "NaN"),
            "what is not a finite number is a word"
        );
    }

    #[test]
    fn modes_read_as_the_contract_writes_them() {
        for (json, mode) in [
            (r#""exact""#, Compare::Exact),
            (r#""trim""#, Compare::Trim),
            (r#""tokens""#, Compare::Tokens),
            (r#"{"float": 0.001}"#, Compare::Float(0.001)),
        ] {
            assert_eq!(serde_json::from_str::<Compare>(json).unwrap(), mode);
        }
        assert!(serde_json::from_str::<Compare>(r#""fuzzy""#).is_err());
    }

    fn run(status: Status, exit_code: Option<i64>, stdout: &str) -> TestResult {
        let mut record: ExecutionRecord = serde_json::from_value(serde_json::json!({
            "execution_id": uuid::Uuid::nil(), "status": status, "exit_code": exit_code,
            "signal": null, "stdout": stdout, "stderr": "", "stdout_truncated": false,
            "stderr_truncated": false, "compile": null, "duration_ms": 1, "cpu_time_ms": 1,
            "memory_peak_bytes": 1, "language": "python", "version": "3", "node": null,
            "created_at": "2026-01-01T00:00:00Z", "started_at": null, "finished_at": null
        }))
        .unwrap();
        record.status = status;
        let case = TestCase {
            stdin: String::new(),
            expected_output: "ok\n".into(),
            args: None,
            timeout: None,
        };
        TestResult::judge(record, &case, Compare::Trim)
    }

    #[test]
    fn each_case_gets_its_verdict_and_the_first_failure_is_the_overall_one() {
        let cases = [
            run(Status::Completed, Some(0), "ok"),
            run(Status::Completed, Some(0), "no"),
            run(Status::Completed, Some(1), "ok"),
            run(Status::TimeLimitExceeded, None, ""),
            run(Status::Completed, Some(139), "ok"),
        ];
        let verdicts: Vec<Verdict> = cases.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Accepted,
                Verdict::WrongAnswer,
                Verdict::RuntimeError,
                Verdict::TimeLimitExceeded,
                Verdict::RuntimeError
            ]
        );
        assert_eq!(Verdict::overall(&cases), Verdict::WrongAnswer);
        assert_eq!(Verdict::overall(&cases[..1]), Verdict::Accepted);
        assert_eq!(Verdict::overall(&[]), Verdict::Accepted);
    }

    proptest! {
        #[test]
        fn every_mode_accepts_the_expected_output_itself(text in "[ -~\n\t]{0,64}") {
            for mode in [Compare::Exact, Compare::Trim, Compare::Tokens, Compare::Float(0.0)] {
                prop_assert!(mode.matches(&text, &text), "{mode:?}");
            }
        }

        #[test]
        fn trim_accepts_what_only_adds_trailing_whitespace(
            lines in proptest::collection::vec("[a-z0-9 ]{0,8}[a-z0-9]", 1..6),
            pad in "[ \t]{0,3}",
            tail in "\n{0,3}",
        ) {
            let expected = lines.join("\n");
            let padded: Vec<String> = lines.iter().map(|l| format!("{l}{pad}")).collect();
            let actual = format!("{}{tail}", padded.join("\n"));
            prop_assert!(Compare::Trim.matches(&expected, &actual));
        }
    }
}
