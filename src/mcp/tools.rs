//! The tools an agent sees: what each is for (agents pick tools by their descriptions), the
//! arguments it takes, and how its answer reads: text for the model, and the record itself as
//! structured content for programs.
//!
//! A program that ran is a normal result, whatever it did: a non-zero exit is `completed` with
//! that exit code, a busy loop is `time_limit_exceeded`. Only a call that could not run (bad
//! arguments, an unknown language, the server away) is an error result (`isError`), and its
//! text says why in the server's own words.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema;
use crate::judge::{Compare, TestCase, TestResult, Verdict};
use crate::languages::LanguageInfo;
use crate::model::{ExecuteRequest, ExecutionRecord, SourceFile, Status};

pub const EXECUTE: &str = "execute";
pub const RUN_TESTS: &str = "run_tests";
pub const LANGUAGES: &str = "languages";

/// `execute`'s arguments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteArgs {
    /// The language: a name or an alias, e.g. `python`, `py`, `javascript`, `c`, `cpp`,
    /// `java`, `go`, `rust`, `bash`. The `languages` tool lists them all.
    pub language: String,
    /// The program's source code (its main file).
    pub code: String,
    /// Standard input for the program.
    #[serde(default)]
    pub stdin: String,
    /// More source files, written beside the main file so that it can import or include
    /// them, e.g. `{"name": "util.py", "content": "..."}`.
    #[serde(default)]
    pub files: Vec<SourceFile>,
    /// Command-line arguments for the program.
    #[serde(default)]
    pub args: Vec<String>,
    /// Wall-clock limit in seconds; the language's default when absent (`languages` gives
    /// each language's range).
    pub timeout: Option<f64>,
}

/// `run_tests`' arguments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunTestsArgs {
    /// The language: a name or an alias (see `languages`).
    pub language: String,
    /// The program's source code (its main file). It reads each case's stdin and prints its
    /// answer on stdout.
    pub code: String,
    /// The cases: each one's stdin and the stdout it expects.
    pub tests: Vec<TestCase>,
    /// How stdout is held against `expected_output`: `trim` (default) ignores trailing
    /// whitespace on each line and blank lines at the end.
    #[serde(default)]
    pub compare: Compare,
    /// More source files, written beside the main file.
    #[serde(default)]
    pub files: Vec<SourceFile>,
    /// Command-line arguments for every case (a case may give its own).
    #[serde(default)]
    pub args: Vec<String>,
    /// Wall-clock limit in seconds for each case; the language's default when absent.
    pub timeout: Option<f64>,
}

/// `languages`' structured answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LanguageList {
    pub languages: Vec<LanguageEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LanguageEntry {
    /// The name `execute` takes.
    pub name: String,
    /// Other names `execute` takes for it.
    pub aliases: Vec<String>,
    /// The toolchain's version.
    pub version: String,
}

/// No arguments.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// The tools, as `tools/list` shows them.
fn all() -> Vec<Tool> {
    let sandboxed = || {
        ToolAnnotations::new()
            .read_only(true)
            .destructive(false)
            .open_world(false)
    };
    vec![
        Tool::new(EXECUTE, EXECUTE_ABOUT, schema::of::<ExecuteArgs>())
            .with_title("Run code in a sandbox")
            .with_raw_output_schema(schema::of::<ExecutionRecord>())
            .with_annotations(sandboxed()),
        Tool::new(RUN_TESTS, RUN_TESTS_ABOUT, schema::of::<RunTestsArgs>())
            .with_title("Check a program against test cases")
            .with_raw_output_schema(schema::of::<ExecutionRecord>())
            .with_annotations(sandboxed()),
        Tool::new(LANGUAGES, LANGUAGES_ABOUT, schema::of::<NoArgs>())
            .with_title("List the languages")
            .with_raw_output_schema(schema::of::<LanguageList>())
            .with_annotations(sandboxed().idempotent(true)),
    ]
}

const EXECUTE_ABOUT: &str = "Run a program in a fresh, isolated sandbox and get back what it \
printed (stdout, stderr), its exit code, and the time and memory it used. Use it to test code, \
check a computation or see what a snippet really does. The sandbox has no network and limits \
on time, memory and output; nothing persists between calls, so send every file the program \
needs in one call. A program that fails or hits a limit is a normal result: read `status` \
(`completed`, `time_limit_exceeded`, `memory_limit_exceeded`, `output_limit_exceeded`, \
`compile_error`) and `exit_code`.";

const RUN_TESTS_ABOUT: &str = "Check a program against test cases: it is compiled once, then \
run once per case with that case's stdin, each run in a fresh sandbox, and its stdout is \
compared with the expected output. Returns a verdict per case (`accepted`, `wrong_answer`, \
`runtime_error`, `time_limit_exceeded`, ...) and an overall verdict: the first case that was \
not accepted, else `accepted`. Use it to check a solution against examples.";

const LANGUAGES_ABOUT: &str = "List the languages `execute` and `run_tests` take: each one's \
name, the aliases it also answers to, and its version.";

/// The arguments of a call, or the error result that says what is wrong with them.
pub fn parse<T: serde::de::DeserializeOwned>(
    tool: &str,
    arguments: Option<JsonObject>,
) -> Result<T, CallToolResult> {
    let arguments = Value::Object(arguments.unwrap_or_default());
    serde_json::from_value(arguments)
        .map_err(|e| refusal(format!("invalid arguments for `{tool}`: {e}")))
}

impl ExecuteArgs {
    pub fn into_request(self) -> ExecuteRequest {
        ExecuteRequest {
            stdin: self.stdin,
            files: self.files,
            args: self.args,
            timeout: self.timeout,
            ..ExecuteRequest::new(self.language, self.code)
        }
    }
}

impl RunTestsArgs {
    pub fn into_request(self) -> ExecuteRequest {
        ExecuteRequest {
            tests: self.tests,
            compare: self.compare,
            files: self.files,
            args: self.args,
            timeout: self.timeout,
            ..ExecuteRequest::new(self.language, self.code)
        }
    }
}

/// An error result: the call could not run, for the reason given.
pub fn refusal(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// A record as a result: the record as structured content, and as text that reads well.
pub fn record_result(record: &ExecutionRecord) -> CallToolResult {
    let text = match &record.tests {
        Some(cases) => describe_cases(record, cases),
        None => describe(record),
    };
    structured(text, record)
}

pub fn languages_result(languages: Vec<LanguageInfo>) -> CallToolResult {
    let list = LanguageList {
        languages: languages
            .into_iter()
            .map(|l| LanguageEntry {
                name: l.name,
                aliases: l.aliases,
                version: l.version,
            })
            .collect(),
    };
    let lines: Vec<String> = list
        .languages
        .iter()
        .map(|l| match l.aliases.is_empty() {
            true => format!("{} {}", l.name, l.version),
            false => format!("{} {} (also: {})", l.name, l.version, l.aliases.join(", ")),
        })
        .collect();
    let text = format!("{} languages:\n{}", lines.len(), lines.join("\n"));
    structured(text, &list)
}

fn structured(text: String, value: &impl Serialize) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(serde_json::to_value(value).expect("a record serialises"));
    result
}

/// How the program ended, then what it printed.
pub fn describe(record: &ExecutionRecord) -> String {
    let mut text = headline(record);
    if let Some(compile) = record.compile.as_ref() {
        if record.status == Status::CompileError {
            let output = format!("{}{}", compile.stdout, compile.stderr);
            section(&mut text, "compiler output", &output, false);
        }
    }
    section(&mut text, "stdout", &record.stdout, record.stdout_truncated);
    if !record.stderr.is_empty() {
        section(&mut text, "stderr", &record.stderr, record.stderr_truncated);
    }
    text
}

/// One line: the status in plain words, the exit code or signal, time and memory.
fn headline(record: &ExecutionRecord) -> String {
    let ended = match (&record.signal, record.exit_code) {
        (Some(signal), _) => format!(", killed by {signal}"),
        (None, Some(code)) => format!(", exit code {code}"),
        (None, None) => String::new(),
    };
    let what = match record.status {
        Status::Completed => format!("Completed{ended}"),
        Status::TimeLimitExceeded => format!("Time limit exceeded: the program was stopped{ended}"),
        Status::MemoryLimitExceeded => format!("Memory limit exceeded{ended}"),
        Status::OutputLimitExceeded => {
            "Output limit exceeded: the program printed more than allowed and was stopped".into()
        }
        Status::CompileError => "Compile error: the program did not compile".into(),
        Status::Cancelled => "Cancelled".into(),
        Status::InternalError => format!(
            "Internal error: {}",
            record.error.as_deref().unwrap_or("the sandbox failed")
        ),
        Status::Queued | Status::Running => format!(
            "Still {} when the wait ended (execution {})",
            record.status.as_str(),
            record.execution_id
        ),
    };
    let mut used = Vec::new();
    if let Some(ms) = record.duration_ms {
        used.push(format!("{ms} ms"));
    }
    if let Some(bytes) = record.memory_peak_bytes {
        used.push(format!("{:.1} MiB peak memory", bytes as f64 / 1048576.0));
    }
    match used.is_empty() {
        true => format!("{what}.\n"),
        false => format!("{what} ({}).\n", used.join(", ")),
    }
}

fn section(text: &mut String, name: &str, body: &str, truncated: bool) {
    let cut = if truncated {
        ", cut at the output limit"
    } else {
        ""
    };
    match body.is_empty() {
        true => text.push_str(&format!("--- {name}: empty ---\n")),
        false => {
            text.push_str(&format!("--- {name}{cut} ---\n{body}"));
            if !body.ends_with('\n') {
                text.push('\n');
            }
        }
    }
}

/// The overall verdict, then a line per case; what a wrong case printed is shown.
fn describe_cases(record: &ExecutionRecord, cases: &[TestResult]) -> String {
    let accepted = cases
        .iter()
        .filter(|c| c.verdict == Verdict::Accepted)
        .count();
    let verdict = record.verdict.map_or("none", Verdict::as_str);
    let mut text = format!(
        "Verdict: {verdict} ({accepted} of {} cases accepted).\n",
        cases.len()
    );
    if record.status == Status::CompileError {
        return text + &describe(record);
    }
    for (i, case) in cases.iter().enumerate() {
        let ms = case
            .duration_ms
            .map(|ms| format!(", {ms} ms"))
            .unwrap_or_default();
        text.push_str(&format!("case {}: {}{ms}\n", i + 1, case.verdict.as_str()));
        if case.verdict != Verdict::Accepted {
            section(&mut text, "its stdout", &case.stdout, case.stdout_truncated);
            if !case.stderr.is_empty() {
                section(&mut text, "its stderr", &case.stderr, case.stderr_truncated);
            }
        }
    }
    text
}

/// The tools, made once per process (their schemas are derived at run time).
pub fn list() -> Arc<Vec<Tool>> {
    static TOOLS: std::sync::OnceLock<Arc<Vec<Tool>>> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| Arc::new(all())).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(fields: Value) -> ExecutionRecord {
        let mut record = json!({
            "execution_id": "0e286953-fa59-4652-8583-aa28e9f1ab75", "status": "completed",
            "exit_code": 0, "signal": null, "stdout": "", "stderr": "",
            "stdout_truncated": false, "stderr_truncated": false, "compile": null,
            "duration_ms": 12, "cpu_time_ms": 10, "memory_peak_bytes": 4194304,
            "language": "python", "version": "3.11.2", "node": "n",
            "created_at": "2026-12-07T00:00:00Z", "started_at": null, "finished_at": null});
        record
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        serde_json::from_value(record).unwrap()
    }

    #[test]
    fn a_record_reads_as_how_it_ended_then_what_it_printed() {
        let text = describe(&record(
            json!({"exit_code": 3, "stdout": "hi\n", "stderr": "oops"}),
        ));
        assert_eq!(
            text,
            "Completed, exit code 3 (12 ms, 4.0 MiB peak memory).\n\
             --- stdout ---\nhi\n--- stderr ---\noops\n"
        );
        let cut = describe(&record(json!({"stdout": "y\n", "stdout_truncated": true})));
        assert!(
            cut.contains("--- stdout, cut at the output limit ---"),
            "{cut}"
        );
        let quiet = describe(&record(json!({})));
        assert!(quiet.ends_with("--- stdout: empty ---\n"), "{quiet}");
    }

    #[test]
    fn limits_and_compile_errors_are_said_in_plain_words() {
        let slow = record(json!({"status": "time_limit_exceeded", "exit_code": null,
            "signal": "SIGKILL", "duration_ms": 1001, "memory_peak_bytes": null}));
        assert!(describe(&slow).starts_with(
            "Time limit exceeded: the program was stopped, killed by SIGKILL (1001 ms)."
        ));
        let broken = record(json!({"status": "compile_error", "exit_code": null,
            "compile": {"stdout": "", "stderr": "main.c:1: error: expected ')'\n",
                "stdout_truncated": false, "stderr_truncated": false, "exit_code": 1,
                "timed_out": false, "duration_ms": 40}}));
        let text = describe(&broken);
        assert!(
            text.starts_with("Compile error: the program did not compile"),
            "{text}"
        );
        assert!(
            text.contains("--- compiler output ---\nmain.c:1: error: expected ')'\n"),
            "{text}"
        );
        let waiting = record(json!({"status": "queued", "exit_code": null}));
        assert!(describe(&waiting).contains("Still queued when the wait ended"));
    }

    #[test]
    fn bad_arguments_are_an_error_result_that_names_them() {
        let arguments = |v: Value| v.as_object().cloned();
        let refused = parse::<ExecuteArgs>(
            EXECUTE,
            arguments(json!({"language": "c", "code": "x", "input": "1"})),
        )
        .unwrap_err();
        assert_eq!(refused.is_error, Some(true));
        let text = serde_json::to_string(&refused.content).unwrap();
        assert!(
            text.contains("unknown field `input`") && text.contains("`stdin`"),
            "{text}"
        );
        let none = parse::<NoArgs>(LANGUAGES, None);
        assert!(none.is_ok(), "no arguments at all is no arguments");
        let request = parse::<ExecuteArgs>(
            EXECUTE,
            arguments(json!({"language": "py", "code": "1",
            "stdin": "s", "args": ["a"], "timeout": 2.5})),
        )
        .unwrap()
        .into_request();
        assert_eq!(
            (request.stdin.as_str(), request.args.len(), request.timeout),
            ("s", 1, Some(2.5))
        );
    }

    #[test]
    fn every_tool_has_an_object_input_schema_and_an_output_schema() {
        for tool in list().iter() {
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            assert!(tool.output_schema.is_some(), "{}", tool.name);
        }
    }
}
