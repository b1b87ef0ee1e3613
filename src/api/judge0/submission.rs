//! A Judge0 submission as a client sends it, checked the way Judge0 checks it (every field,
//! all errors at once, `{"field": ["message"]}`) against CodeBeaker's bounds in Judge0's
//! units, and turned into an [`ExecuteRequest`] that carries the submission back as its
//! [`Echo`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::files;
use crate::config::{Bounded, LimitsConfig};
use crate::languages::{LanguageLimits, Languages};
use crate::model::{Encoding, ExecuteRequest, SourceFile, MAX_COMPILER_OPTIONS};
use crate::sandbox::limits::ByteSize;

/// Judge0's validation errors: each field with its messages.
pub type Errors = Map<String, Value>;

/// The submission's fields after Judge0's defaults, kept with the record so that a read
/// answers with them (`fields=*`) and the status can be judged as Judge0 judges it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Echo {
    pub source_code: Option<String>,
    pub language_id: Option<u32>,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub number_of_runs: u32,
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    /// KB, as every Judge0 size.
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: i64,
    pub enable_per_process_and_thread_time_limit: bool,
    pub enable_per_process_and_thread_memory_limit: bool,
    pub max_file_size: u64,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub redirect_stderr_to_stdout: bool,
    pub callback_url: Option<String>,
    /// The zip, base64, as sent.
    pub additional_files: Option<String>,
    pub enable_network: bool,
}

/// Judge0's bounds on a submission, from CodeBeaker's own, in Judge0's units (seconds, KB).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub cpu_time: Bounded<f64>,
    pub cpu_extra_time: Bounded<f64>,
    pub wall_time: Bounded<f64>,
    pub memory_kb: Bounded<f64>,
    pub stack_kb: Bounded<f64>,
    pub processes: Bounded<f64>,
    pub file_size_kb: Bounded<f64>,
    pub runs: Bounded<f64>,
}

/// Judge0's extra CPU time: how long past its CPU limit a program runs before it is killed
/// (it is judged over the limit all the same).
const CPU_EXTRA_TIME: Bounded<f64> = Bounded {
    default: 1.0,
    min: 0.0,
    max: 5.0,
};

impl Bounds {
    /// The server's bounds, with the language's defaults where it has its own (a JVM needs
    /// more memory than a Judge0 default would give it).
    pub fn new(limits: &LimitsConfig, language: &LanguageLimits) -> Bounds {
        let with = |b: Bounded<ByteSize>, own: Option<ByteSize>| Bounded {
            default: (b.default_with(own).bytes() / 1024) as f64,
            min: b.min.bytes().div_ceil(1024) as f64,
            max: (b.max.bytes() / 1024) as f64,
        };
        let seconds = |b: Bounded<f64>, own: Option<f64>| Bounded {
            default: b.default_with(own),
            ..b
        };
        let pids = limits.pids;
        Bounds {
            cpu_time: seconds(limits.cpu_time, language.cpu_time),
            cpu_extra_time: CPU_EXTRA_TIME,
            wall_time: seconds(limits.timeout, language.timeout),
            memory_kb: with(limits.memory, language.memory),
            stack_kb: with(limits.stack, None),
            processes: Bounded {
                default: pids.default_with(language.pids) as f64,
                min: pids.min as f64,
                max: pids.max as f64,
            },
            file_size_kb: with(limits.file_size, language.file_size),
            // Each submission runs once: its time and memory are that run's.
            runs: Bounded {
                default: 1.0,
                min: 1.0,
                max: 1.0,
            },
        }
    }
}

/// What [`read`] needs to know: the query's `base64_encoded`, the languages and bounds.
pub struct Context<'a> {
    pub base64: bool,
    pub languages: &'a Languages,
    pub limits: &'a LimitsConfig,
}

/// The submission as a request, or Judge0's errors for it.
pub fn read(body: &Value, cx: &Context) -> Result<ExecuteRequest, Errors> {
    let Some(map) = body.as_object() else {
        let mut errors = Errors::new();
        add(&mut errors, "submission", "must be a JSON object");
        return Err(errors);
    };
    let mut r = Reader {
        map,
        errors: Errors::new(),
    };
    let language_id = r.integer("language_id").map(|id| id as u32);
    let language = language_id.and_then(|id| cx.languages.by_judge0_id(id));
    let bounds = Bounds::new(
        cx.limits,
        &language.map(|l| l.limits.clone()).unwrap_or_default(),
    );
    let echo = Echo {
        language_id,
        ..r.echo(cx.base64, bounds)
    };
    match (echo.language_id, language) {
        (None, _) => r.error("language_id", "can't be blank"),
        (Some(id), None) => r.error(
            "language_id",
            format!("language with id {id} doesn't exist"),
        ),
        _ => {}
    }
    let unreadable = r.errors.contains_key("source_code");
    if echo.source_code.as_deref().is_none_or(str::is_empty) && !unreadable {
        r.error("source_code", "can't be blank");
    }
    if echo.compiler_options.is_some() && language.is_some_and(|l| l.compile.is_none()) {
        r.error(
            "compiler_options",
            "setting compiler options is only allowed for compiled languages",
        );
    }
    let args = r.arguments(echo.command_line_arguments.as_deref());
    let files = r.files(echo.additional_files.as_deref(), cx.limits);
    let (Some(language), true) = (language, r.errors.is_empty()) else {
        return Err(r.errors);
    };
    let cpu_kill = (echo.cpu_time_limit + echo.cpu_extra_time).min(bounds.cpu_time.max);
    Ok(request(language.name.clone(), echo, cpu_kill, args, files))
}

/// The request CodeBeaker runs for a checked submission.
fn request(
    language: String,
    echo: Echo,
    cpu_kill: f64,
    args: Vec<String>,
    files: Vec<SourceFile>,
) -> ExecuteRequest {
    let mut request = ExecuteRequest::new(language, echo.source_code.clone().unwrap_or_default());
    let kb = |n: u64| ByteSize::kib(n);
    request.stdin = echo.stdin.clone().unwrap_or_default();
    request.timeout = Some(echo.wall_time_limit);
    // Killed after the extra time (within the server's bound); judged against the limit
    // itself (see `status`).
    request.cpu_time = Some(cpu_kill);
    request.memory_limit = Some(kb(echo.memory_limit));
    request.stack_limit = Some(kb(echo.stack_limit));
    request.pids_limit = Some(echo.max_processes_and_or_threads);
    request.file_size_limit = Some(kb(echo.max_file_size));
    request.stderr_to_stdout = echo.redirect_stderr_to_stdout;
    request.compiler_options = echo.compiler_options.clone();
    request.callback_url = echo.callback_url.clone();
    request.args = args;
    request.files = files;
    let fields = serde_json::to_value(&echo).expect("an echo is plain data");
    request.echo = Some(serde_json::json!({ super::render::ECHO_KEY: fields }));
    request
}

fn add(errors: &mut Errors, field: &str, message: impl Into<String>) {
    let messages = errors
        .entry(field)
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = messages {
        list.push(Value::String(message.into()));
    }
}

/// Reads fields off the body, noting what is wrong with each rather than stopping.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    errors: Errors,
}

impl Reader<'_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        add(&mut self.errors, field, message);
    }

    /// The fields but the language, with the defaults for those not given.
    fn echo(&mut self, base64: bool, b: Bounds) -> Echo {
        let encoded = |r: &mut Self, field| r.text(field, base64);
        Echo {
            source_code: encoded(self, "source_code"),
            language_id: None,
            stdin: encoded(self, "stdin"),
            expected_output: encoded(self, "expected_output"),
            number_of_runs: self.bounded("number_of_runs", b.runs) as u32,
            cpu_time_limit: self.bounded("cpu_time_limit", b.cpu_time),
            cpu_extra_time: self.bounded("cpu_extra_time", b.cpu_extra_time),
            wall_time_limit: self.bounded("wall_time_limit", b.wall_time),
            memory_limit: self.bounded("memory_limit", b.memory_kb) as u64,
            stack_limit: self.bounded("stack_limit", b.stack_kb) as u64,
            max_processes_and_or_threads: self.bounded("max_processes_and_or_threads", b.processes)
                as i64,
            enable_per_process_and_thread_time_limit: self.off(
                "enable_per_process_and_thread_time_limit",
                "this option cannot be enabled",
            ),
            enable_per_process_and_thread_memory_limit: self.off(
                "enable_per_process_and_thread_memory_limit",
                "this option cannot be enabled",
            ),
            max_file_size: self.bounded("max_file_size", b.file_size_kb) as u64,
            compiler_options: self.short("compiler_options"),
            command_line_arguments: self.short("command_line_arguments"),
            redirect_stderr_to_stdout: self.boolean("redirect_stderr_to_stdout").unwrap_or(false),
            callback_url: self.text("callback_url", false),
            additional_files: self.text("additional_files", false),
            enable_network: self.off("enable_network", "enabling network is not allowed"),
        }
    }

    /// Text, base64-decoded when the request says so; empty counts as absent.
    fn text(&mut self, field: &str, base64: bool) -> Option<String> {
        let text = match self.map.get(field)? {
            Value::Null => return None,
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                self.error(field, "must be text");
                return None;
            }
        };
        let text = match base64 {
            false => text,
            true => match decode_base64(&text).map(String::from_utf8) {
                Some(Ok(text)) => text,
                Some(Err(_)) => {
                    self.error(field, "is not UTF-8 text once decoded from base64");
                    return None;
                }
                None => {
                    self.error(field, "is not valid base64");
                    return None;
                }
            },
        };
        Some(text).filter(|t| !t.is_empty())
    }

    /// A number, given as one or as text (Judge0 takes both).
    fn number(&mut self, field: &str) -> Option<f64> {
        let number = match self.map.get(field)? {
            Value::Null => return None,
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => return None,
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        if number.is_none_or(|n| !n.is_finite()) {
            self.error(field, "is not a number");
            return None;
        }
        number
    }

    fn integer(&mut self, field: &str) -> Option<i64> {
        let n = self.number(field)?;
        if n.fract() != 0.0 {
            self.error(field, "must be an integer");
            return None;
        }
        Some(n as i64)
    }

    /// The given value within the bounds, or their default.
    fn bounded(&mut self, field: &str, bounds: Bounded<f64>) -> f64 {
        let Some(n) = self.number(field) else {
            return bounds.default;
        };
        if n < bounds.min {
            let min = plain(bounds.min);
            self.error(field, format!("must be greater than or equal to {min}"));
        } else if n > bounds.max {
            let max = plain(bounds.max);
            self.error(field, format!("must be less than or equal to {max}"));
        }
        n
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "1" => Some(true),
            Value::String(s) if s == "false" || s == "0" || s.is_empty() => Some(false),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
            _ => {
                self.error(field, "must be true or false");
                None
            }
        }
    }

    /// An option this server never enables: false, or an error saying why not.
    fn off(&mut self, field: &str, refusal: &str) -> bool {
        if self.boolean(field) == Some(true) {
            self.error(field, refusal);
        }
        false
    }

    /// Text of at most Judge0's 512 characters.
    fn short(&mut self, field: &str) -> Option<String> {
        let text = self.text(field, false)?;
        if text.chars().count() > MAX_COMPILER_OPTIONS {
            self.error(
                field,
                format!("is too long (maximum is {MAX_COMPILER_OPTIONS} characters)"),
            );
        }
        Some(text)
    }

    /// The arguments, split as the shell Judge0 hands them to would, without the characters
    /// Judge0 removes first (`$&;<>|` and backquotes).
    fn arguments(&mut self, line: Option<&str>) -> Vec<String> {
        let Some(line) = line else { return Vec::new() };
        let cleaned: String = line.chars().filter(|c| !"$&;<>|`".contains(*c)).collect();
        match shell_words::split(&cleaned) {
            Ok(args) => args,
            Err(e) => {
                self.error(
                    "command_line_arguments",
                    format!("cannot be split into words: {e}"),
                );
                Vec::new()
            }
        }
    }

    fn files(&mut self, zip: Option<&str>, limits: &LimitsConfig) -> Vec<SourceFile> {
        let Some(zip) = zip else { return Vec::new() };
        let unpacked = decode_base64(zip)
            .ok_or_else(|| "is not valid base64".to_string())
            .and_then(|bytes| files::unpack(&bytes, limits).map_err(|e| e.to_string()));
        match unpacked {
            Ok(files) => files
                .into_iter()
                .map(|(name, content)| {
                    use base64::Engine;
                    SourceFile {
                        name,
                        content: base64::engine::general_purpose::STANDARD.encode(content),
                        encoding: Encoding::Base64,
                    }
                })
                .collect(),
            Err(e) => {
                self.error("additional_files", e);
                Vec::new()
            }
        }
    }
}

/// Base64 as Judge0 reads it (Ruby's `decode64`): line breaks and spaces are ignored.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// `15` rather than `15.0`, as Rails writes bounds.
fn plain(n: f64) -> String {
    match n.fract() == 0.0 {
        true => format!("{}", n as i64),
        false => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_with(body: Value, base64: bool) -> Result<ExecuteRequest, Errors> {
        let languages = Languages::load(None).unwrap();
        let limits = LimitsConfig::default();
        let cx = Context {
            base64,
            languages: &languages,
            limits: &limits,
        };
        read(&body, &cx)
    }

    #[test]
    fn a_submission_becomes_a_request_in_codebeaker_units() {
        let request = read_with(
            json!({"source_code": "cHJpbnQoMSk=", "language_id": "71", "stdin": "eA==",
                   "memory_limit": 131072, "cpu_time_limit": "2", "command_line_arguments": "a 'b c' $(id)"}),
            true,
        )
        .unwrap();
        assert_eq!(request.language, "python");
        assert_eq!(request.code, "print(1)");
        assert_eq!(request.stdin, "x");
        assert_eq!(request.memory_limit, Some(ByteSize::mib(128)));
        assert_eq!(
            request.cpu_time,
            Some(3.0),
            "the limit plus the extra second"
        );
        assert_eq!(request.args, ["a", "b c", "(id)"]);
        let echo: Echo = serde_json::from_value(request.echo.unwrap()["judge0"].clone()).unwrap();
        assert_eq!(echo.cpu_time_limit, 2.0);
        assert_eq!(
            echo.wall_time_limit,
            LimitsConfig::default().timeout.default
        );
    }

    #[test]
    fn arguments_and_options_past_judge0s_512_characters_are_refused() {
        let long = "a ".repeat(257);
        let errors = read_with(
            json!({"language_id": 50, "source_code": "int main(){}",
                   "command_line_arguments": long, "compiler_options": long}),
            false,
        )
        .unwrap_err();
        let too_long = json!(["is too long (maximum is 512 characters)"]);
        assert_eq!(errors["command_line_arguments"], too_long);
        assert_eq!(errors["compiler_options"], too_long);
    }

    #[test]
    fn defaults_are_the_languages_own() {
        let request = read_with(
            json!({"source_code": "class Main {}", "language_id": 62}),
            false,
        )
        .unwrap();
        let java = Languages::load(None).unwrap().get("java").unwrap().clone();
        assert_eq!(request.memory_limit, java.limits.memory);
        assert_eq!(request.pids_limit, java.limits.pids);
    }

    #[test]
    fn every_bad_field_is_named_at_once_in_judge0s_shape() {
        let errors = read_with(
            json!({"language_id": 9999, "memory_limit": 1, "wall_time_limit": 10000,
                   "enable_network": true, "number_of_runs": 3, "cpu_time_limit": "fast"}),
            false,
        )
        .unwrap_err();
        let expected = json!({
            "language_id": ["language with id 9999 doesn't exist"],
            "source_code": ["can't be blank"],
            "memory_limit": ["must be greater than or equal to 16384"],
            "wall_time_limit": ["must be less than or equal to 60"],
            "enable_network": ["enabling network is not allowed"],
            "number_of_runs": ["must be less than or equal to 1"],
            "cpu_time_limit": ["is not a number"],
        });
        assert_eq!(Value::Object(errors), expected);
    }

    #[test]
    fn compiler_options_need_a_compiled_language_and_base64_must_decode() {
        let errors = read_with(
            json!({"language_id": 71, "source_code": "%%%", "compiler_options": "-O2"}),
            true,
        )
        .unwrap_err();
        assert_eq!(errors["source_code"], json!(["is not valid base64"]));
        assert_eq!(
            errors["compiler_options"],
            json!(["setting compiler options is only allowed for compiled languages"])
        );
    }
}
