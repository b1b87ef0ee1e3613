//! A record in Judge0's shape: its fields (every one Judge0 has, no other), its status judged
//! by Judge0's rules, times in seconds as decimal strings, sizes in KB, and outputs as text or
//! base64.

use serde_json::{json, Map, Value};

use super::status;
use super::submission::Echo;
use crate::judge::Compare;
use crate::languages::Languages;
use crate::model::{ExecutionRecord, Status};

/// Every field of a Judge0 submission, in Judge0's order (`fields=*`).
pub const FIELDS: &[&str] = &[
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// What a read answers when it names no fields.
pub const DEFAULT_FIELDS: &[&str] = &[
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// The fields a `fields` parameter asks for, or the unknown ones it names.
pub fn requested(fields: Option<&str>) -> Result<Vec<&'static str>, Vec<String>> {
    let asked: Vec<&str> = fields
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let unknown: Vec<String> = asked
        .iter()
        .filter(|f| **f != "*" && !FIELDS.contains(f))
        .map(|f| f.to_string())
        .collect();
    if !unknown.is_empty() {
        return Err(unknown);
    }
    if asked.contains(&"*") {
        return Ok(FIELDS.to_vec());
    }
    let chosen: Vec<&'static str> = FIELDS
        .iter()
        .copied()
        .filter(|f| asked.contains(f))
        .collect();
    Ok(match chosen.is_empty() {
        true => DEFAULT_FIELDS.to_vec(),
        false => chosen,
    })
}

/// An output that is not UTF-8, asked for as text: Judge0 answers with an error instead.
#[derive(Debug, PartialEq, Eq)]
pub struct NotUtf8;

/// The record as a Judge0 submission with the given fields.
pub fn submission(
    record: &ExecutionRecord,
    languages: &Languages,
    fields: &[&str],
    base64: bool,
) -> Result<Value, NotUtf8> {
    let echo = echo_of(record);
    let judged = status::judge(record, &echo);
    let outputs = Outputs::of(record, judged.status.id);
    let text = |bytes: Option<Vec<u8>>| -> Result<Value, NotUtf8> {
        let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
            return Ok(Value::Null);
        };
        match base64 {
            true => Ok(Value::String(encode(&bytes))),
            false => String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| NotUtf8),
        }
    };
    let given = |value: &Option<String>| text(value.clone().map(String::into_bytes));
    let language_id = echo
        .language_id
        .or_else(|| first_judge0_id(languages, record));
    let mut out = Map::new();
    for &field in fields {
        let value = match field {
            "source_code" => given(&echo.source_code)?,
            "stdin" => given(&echo.stdin)?,
            "expected_output" => given(&echo.expected_output)?,
            "stdout" => text(outputs.stdout.clone())?,
            "stderr" => text(outputs.stderr.clone())?,
            "compile_output" => text(outputs.compile.clone())?,
            "message" => given(&judged.message)?,
            "language_id" => json!(language_id),
            "language" => language(languages, language_id),
            "status_id" => json!(judged.status.id),
            "status" => json!({"id": judged.status.id, "description": judged.status.description}),
            "token" => json!(record.execution_id),
            "created_at" => json!(timestamp(Some(record.created_at))),
            "finished_at" => json!(timestamp(record.finished_at)),
            "time" => json!(record.cpu_time_ms.filter(|_| ran(record)).map(seconds)),
            "wall_time" => json!(record.duration_ms.filter(|_| ran(record)).map(seconds)),
            "memory" => json!(record
                .memory_peak_bytes
                .filter(|_| ran(record))
                .map(|b| b / 1024)),
            "exit_code" => json!(judged.exit_code),
            "exit_signal" => json!(judged.exit_signal),
            "additional_files" => json!(echo.additional_files),
            other => limit(&echo, other),
        };
        out.insert(field.to_string(), value);
    }
    Ok(Value::Object(out))
}

/// The Judge0 fields the request kept with its record; defaults for a record that came in
/// through another API.
fn echo_of(record: &ExecutionRecord) -> Echo {
    record
        .echo
        .as_ref()
        .and_then(|echo| echo.get(ECHO_KEY))
        .and_then(|value| serde_json::from_value(value.clone()).ok())
        .unwrap_or_default()
}

/// Where in a record's echo the Judge0 API keeps its fields.
pub const ECHO_KEY: &str = "judge0";

/// Whether the record's request came through the Judge0 API.
pub fn is_judge0(record: &ExecutionRecord) -> bool {
    record
        .echo
        .as_ref()
        .is_some_and(|e| e.get(ECHO_KEY).is_some())
}

/// One of the limits and switches, as the submission set them (decimals as text, as Judge0
/// writes its decimal columns).
fn limit(echo: &Echo, field: &str) -> Value {
    let decimal = |n: f64| json!(format!("{n:?}"));
    match field {
        "number_of_runs" => json!(echo.number_of_runs),
        "cpu_time_limit" => decimal(echo.cpu_time_limit),
        "cpu_extra_time" => decimal(echo.cpu_extra_time),
        "wall_time_limit" => decimal(echo.wall_time_limit),
        "memory_limit" => json!(echo.memory_limit),
        "stack_limit" => json!(echo.stack_limit),
        "max_processes_and_or_threads" => json!(echo.max_processes_and_or_threads),
        "enable_per_process_and_thread_time_limit" => {
            json!(echo.enable_per_process_and_thread_time_limit)
        }
        "enable_per_process_and_thread_memory_limit" => {
            json!(echo.enable_per_process_and_thread_memory_limit)
        }
        "max_file_size" => json!(echo.max_file_size),
        "compiler_options" => json!(echo.compiler_options),
        "command_line_arguments" => json!(echo.command_line_arguments),
        "redirect_stderr_to_stdout" => json!(echo.redirect_stderr_to_stdout),
        "callback_url" => json!(echo.callback_url),
        "enable_network" => json!(echo.enable_network),
        _ => Value::Null,
    }
}

/// A record's outputs as bytes: stdout exactly (from its base64 copy when it is not UTF-8),
/// and the compiler's two streams as one, as Judge0 gives them.
struct Outputs {
    stdout: Option<Vec<u8>>,
    stderr: Option<Vec<u8>>,
    compile: Option<Vec<u8>>,
}

impl Outputs {
    fn of(record: &ExecutionRecord, status: u8) -> Outputs {
        let exact = |text: &str, copy: &Option<String>| {
            copy.as_deref()
                .and_then(super::submission::decode_base64)
                .unwrap_or_else(|| text.as_bytes().to_vec())
        };
        let compile = record.compile.as_ref().map(|c| {
            let mut both = c.stdout.clone().into_bytes();
            both.extend_from_slice(c.stderr.as_bytes());
            both
        });
        // A failed compile's output is the compiler's; the program never ran.
        let ran = status != status::COMPILATION_ERROR.id;
        Outputs {
            stdout: ran.then(|| exact(&record.stdout, &record.stdout_base64)),
            stderr: ran.then(|| exact(&record.stderr, &record.stderr_base64)),
            compile,
        }
    }
}

/// Whether the record has a run's measurements to show.
fn ran(record: &ExecutionRecord) -> bool {
    record.status.is_final() && record.status != Status::CompileError
}

/// Milliseconds as Judge0's seconds, e.g. `"0.012"`.
fn seconds(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// `2026-12-04T18:31:12.123Z`: the exact form Judge0 writes and its SDK parses.
fn timestamp(at: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

fn encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The Judge0 id of a record's language, for records that came in through another API.
fn first_judge0_id(languages: &Languages, record: &ExecutionRecord) -> Option<u32> {
    let language = languages.get(&record.language)?;
    language.judge0.as_ref()?.ids.first().copied()
}

fn language(languages: &Languages, id: Option<u32>) -> Value {
    let found = id.and_then(|id| Some((id, languages.by_judge0_id(id)?)));
    match found {
        Some((id, language)) => json!({"id": id, "name": super::info::name(language)}),
        None => Value::Null,
    }
}

/// Judge0's comparison: trailing whitespace of each line and at the end does not count.
pub fn matches(expected: &str, stdout: &str) -> bool {
    Compare::Trim.matches(expected, stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_default_pick_or_name_the_unknown() {
        assert_eq!(requested(None).unwrap(), DEFAULT_FIELDS);
        assert_eq!(requested(Some("*")).unwrap(), FIELDS);
        assert_eq!(
            requested(Some("stdout, token")).unwrap(),
            ["stdout", "token"]
        );
        assert_eq!(
            requested(Some("stdout,secret,id")).unwrap_err(),
            ["secret", "id"]
        );
    }

    #[test]
    fn times_are_decimal_seconds_and_stamps_have_milliseconds() {
        assert_eq!(seconds(12), "0.012");
        assert_eq!(seconds(1500), "1.500");
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T18:31:12.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(timestamp(Some(at)).unwrap(), "2026-12-04T18:31:12.123Z");
    }

    #[test]
    fn the_comparison_ignores_trailing_whitespace_only() {
        assert!(matches("1 2\n3\n", "1 2  \n3"));
        assert!(!matches("1 2\n3", "1  2\n3"));
    }
}
