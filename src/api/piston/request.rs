//! A Piston v2 execute request (`POST /api/v2/execute`, and the WebSocket's `init`), checked
//! with Piston's own messages and turned into an [`ExecuteRequest`]: the runtime picked by
//! name or alias and a semver selector, times from ms, memory in bytes, `-1` for the default,
//! files decoded from utf8, base64 or hex and named as Piston names them.

use serde_json::Value;

use super::runtimes::{self, Runtime};
use crate::config::LimitsConfig;
use crate::languages::Languages;
use crate::model::{Encoding, ExecuteRequest, SourceFile};
use crate::sandbox::limits::ByteSize;

/// Why Piston refuses a request: its `{"message"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refuse(message: impl Into<String>) -> Refused {
    Refused(message.into())
}

/// The request and the runtime it runs on.
pub fn read(
    body: &Value,
    languages: &Languages,
    limits: &LimitsConfig,
) -> Result<(ExecuteRequest, Runtime), Refused> {
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    let language = text("language").ok_or_else(|| refuse("language is required as a string"))?;
    let version = text("version").ok_or_else(|| refuse("version is required as a string"))?;
    let files = body
        .get("files")
        .and_then(Value::as_array)
        .ok_or_else(|| refuse("files is required as an array"))?;
    let runtime = runtimes::find(languages, limits, language, version)
        .ok_or_else(|| refuse(format!("{language}-{version} runtime is unknown")))?;
    let mut decoded = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        decoded.push(decode(file, i)?);
    }
    // The first utf8 file is the program (Piston runs the first of them); the rest lie beside it.
    let main = decoded
        .iter()
        .position(|f| f.encoding == "utf8")
        .ok_or_else(|| refuse("files must include at least one utf8 encoded file"))?;
    let main = decoded.remove(main);
    let code =
        String::from_utf8(main.bytes).map_err(|_| refuse("files[0].content is not UTF-8"))?;
    let mut request = ExecuteRequest::new(runtime.language.clone(), code);
    request.files = decoded.into_iter().map(File::into_source).collect();
    request.stdin = stdin(body.get("stdin"))?;
    request.args = args(body.get("args"))?;
    let time = |field: &str| limit(body, field, limits.timeout.max * 1000.0);
    request.timeout = time("run_timeout")?.map(|ms| ms / 1000.0);
    request.cpu_time =
        limit(body, "run_cpu_time", limits.cpu_time.max * 1000.0)?.map(|ms| ms / 1000.0);
    let memory = limit(body, "run_memory_limit", limits.memory.max.bytes() as f64)?;
    request.memory_limit = memory.map(|bytes| ByteSize(bytes as u64));
    // The compile step keeps its language's limits; asking for more than they are is refused.
    let compile_ms = runtime.compile_timeout_ms as f64;
    limit(body, "compile_timeout", compile_ms)?;
    limit(body, "compile_cpu_time", compile_ms)?;
    limit(
        body,
        "compile_memory_limit",
        limits.memory.max.bytes() as f64,
    )?;
    Ok((request, runtime))
}

/// A limit as Piston takes it: absent, `-1` (or 0) for the default, a number up to `max`.
fn limit(body: &Value, field: &str, max: f64) -> Result<Option<f64>, Refused> {
    let value = match body.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(refuse(format!("If specified, {field} must be a number"))),
    };
    if value == -1.0 || value == 0.0 {
        return Ok(None);
    }
    if value > max {
        return Err(refuse(format!(
            "{field} cannot exceed the configured limit of {max}"
        )));
    }
    // NaN is neither above 0 nor anything else: refused with the negatives.
    if value.is_nan() || value < 0.0 {
        return Err(refuse(format!("{field} must be non-negative")));
    }
    Ok(Some(value))
}

/// Piston's stdin ends with a newline: it adds one where the client did not.
fn stdin(value: Option<&Value>) -> Result<String, Refused> {
    let mut stdin = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(refuse("stdin must be a string")),
    };
    if !stdin.ends_with('\n') {
        stdin.push('\n');
    }
    Ok(stdin)
}

fn args(value: Option<&Value>) -> Result<Vec<String>, Refused> {
    let Some(Value::Array(list)) = value else {
        return match value {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(_) => Err(refuse("args must be an array of strings")),
        };
    };
    list.iter()
        .map(|a| match a {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(refuse("args must be an array of strings")),
        })
        .collect()
}

/// One file of the request, decoded.
struct File {
    name: String,
    encoding: &'static str,
    bytes: Vec<u8>,
}

impl File {
    fn into_source(self) -> SourceFile {
        use base64::Engine;
        SourceFile {
            name: self.name,
            content: base64::engine::general_purpose::STANDARD.encode(self.bytes),
            encoding: Encoding::Base64,
        }
    }
}

fn decode(file: &Value, i: usize) -> Result<File, Refused> {
    let content = file
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| refuse(format!("files[{i}].content is required as a string")))?;
    // Piston names a file without a name by its place, and reads an unknown encoding as utf8.
    let name = match file.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => format!("file{i}.code"),
    };
    let (encoding, bytes) = match file.get("encoding").and_then(Value::as_str) {
        Some("base64") => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content.trim())
                .map_err(|_| refuse(format!("files[{i}].content is not valid base64")))?;
            ("base64", bytes)
        }
        Some("hex") => {
            let bytes = hex::decode(content.trim())
                .map_err(|_| refuse(format!("files[{i}].content is not valid hex")))?;
            ("hex", bytes)
        }
        _ => ("utf8", content.as_bytes().to_vec()),
    };
    Ok(File {
        name,
        encoding,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read_json(body: Value) -> Result<(ExecuteRequest, Runtime), Refused> {
        read(
            &body,
            &Languages::load(None).unwrap(),
            &LimitsConfig::default(),
        )
    }

    #[test]
    fn piston_clients_default_request_becomes_ours() {
        let (request, runtime) = read_json(json!({
            "language": "py", "version": "*", "files": [{"content": "print(1)"}],
            "stdin": "", "args": ["1", "2", "3"], "compile_timeout": 10000, "run_timeout": 3000,
            "compile_memory_limit": -1, "run_memory_limit": -1
        }))
        .unwrap();
        assert_eq!(runtime.language, "python");
        assert_eq!(request.code, "print(1)");
        assert_eq!(request.stdin, "\n", "Piston ends stdin with a newline");
        assert_eq!(request.args, ["1", "2", "3"]);
        assert_eq!(request.timeout, Some(3.0));
        assert_eq!(request.memory_limit, None, "-1: the default");
    }

    #[test]
    fn files_decode_and_unnamed_ones_are_named_by_place() {
        let (request, _) = read_json(json!({
            "language": "python", "version": "3", "files": [
                {"content": "import helper"},
                {"content": "AAE=", "encoding": "base64"},
                {"name": "data.bin", "content": "ff00", "encoding": "hex"}
            ]
        }))
        .unwrap();
        let names: Vec<&str> = request.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["file1.code", "data.bin"]);
        assert_eq!(request.files[1].content, "/wA=");
    }

    #[test]
    fn refusals_use_pistons_messages() {
        let refused = |body: Value| read_json(body).unwrap_err().0;
        assert_eq!(
            refused(json!({"version": "*"})),
            "language is required as a string"
        );
        assert_eq!(
            refused(json!({"language": "python", "version": "9.x", "files": []})),
            "python-9.x runtime is unknown"
        );
        assert_eq!(
            refused(json!({"language": "python", "version": "*", "files": [{"content": 1}]})),
            "files[0].content is required as a string"
        );
        assert_eq!(
            refused(
                json!({"language": "python", "version": "*", "files": [{"content": "1"}],
                           "run_timeout": 1e9})
            ),
            "run_timeout cannot exceed the configured limit of 60000"
        );
        assert_eq!(
            refused(
                json!({"language": "python", "version": "*", "files": [{"content": "1"}],
                           "run_timeout": "fast"})
            ),
            "If specified, run_timeout must be a number"
        );
    }
}
