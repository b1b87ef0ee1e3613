//! A running execution seen live: the events a worker publishes while it runs (status, output
//! chunks, usage), the input an interactive one takes (stdin, end of file, signals), and how
//! both look to clients. Events travel on core NATS (`queue::live`): at most once, which is
//! why the final record always comes from the records bucket, never from an event.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::{ExecutionRecord, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One thing that happened to an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Status(Status),
    /// Program output, as written (whole UTF-8 characters where the bytes are UTF-8).
    Output {
        stream: Stream,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Usage {
        cpu_time_ms: u64,
        memory_bytes: Option<u64>,
    },
    Final(Box<ExecutionRecord>),
}

impl Event {
    /// The event's name: the SSE event, and the WebSocket frame's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Status(_) => "status",
            Event::Output {
                stream: Stream::Stdout,
                ..
            } => "stdout",
            Event::Output {
                stream: Stream::Stderr,
                ..
            } => "stderr",
            Event::Usage { .. } => "usage",
            Event::Final(_) => "final",
        }
    }

    /// The SSE `data`: the record for `final`, an object for the rest.
    pub fn data(&self) -> Value {
        match self {
            Event::Status(status) => json!({ "status": status }),
            Event::Output { bytes, .. } => match std::str::from_utf8(bytes) {
                Ok(text) => json!({ "data": text }),
                Err(_) => {
                    use base64::Engine;
                    let exact = base64::engine::general_purpose::STANDARD.encode(bytes);
                    json!({ "data": String::from_utf8_lossy(bytes), "data_base64": exact })
                }
            },
            Event::Usage {
                cpu_time_ms,
                memory_bytes,
            } => json!({ "cpu_time_ms": cpu_time_ms, "memory_bytes": memory_bytes }),
            Event::Final(record) => serde_json::to_value(record).unwrap_or(Value::Null),
        }
    }

    /// The WebSocket frame: `{"type": name, ...data}`, and `{"type": "final", "record"}`.
    pub fn frame(&self) -> Value {
        let mut frame = match self {
            Event::Final(_) => json!({ "record": self.data() }),
            _ => self.data(),
        };
        frame["type"] = json!(self.name());
        frame
    }
}

/// What a client sends an interactive execution, as the WebSocket's JSON frames spell it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientInput {
    Stdin { data: String },
    Eof,
    Signal { signal: String },
}

/// Input on its way to the program, resolved: what the worker hands the cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    Stdin(#[serde(with = "serde_bytes")] Vec<u8>),
    Eof,
    Signal(i32),
}

impl TryFrom<ClientInput> for Input {
    type Error = String;

    fn try_from(input: ClientInput) -> Result<Input, String> {
        Ok(match input {
            ClientInput::Stdin { data } => Input::Stdin(data.into_bytes()),
            ClientInput::Eof => Input::Eof,
            ClientInput::Signal { signal } => {
                Input::Signal(signal_number(&signal).ok_or_else(|| {
                    let known: Vec<_> = SIGNALS.iter().map(|(name, _)| *name).collect();
                    format!("unknown signal `{signal}`; known: {}", known.join(", "))
                })?)
            }
        })
    }
}

/// The signals a client may send, and those records name.
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGSYS", 31),
];

/// `SIGINT` or `INT` (any case) to 2.
pub fn signal_number(name: &str) -> Option<i32> {
    let name = name.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS
        .iter()
        .find(|(n, _)| &n[3..] == name)
        .map(|&(_, number)| number)
}

pub fn signal_name(number: i32) -> Option<&'static str> {
    SIGNALS
        .iter()
        .find(|&&(_, n)| n == number)
        .map(|&(name, _)| name)
}

/// Splits output into chunks that end on whole UTF-8 characters: a character cut across two
/// reads is held back until the rest comes, so that a client reading `data` never sees it
/// broken. Bytes that are not UTF-8 at all pass as they are (with `data_base64`).
#[derive(Debug, Default)]
pub struct Utf8Chunks {
    held: Vec<u8>,
}

impl Utf8Chunks {
    /// What of `held` + `bytes` can go now.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(bytes);
        let keep = match std::str::from_utf8(&self.held) {
            Ok(_) => 0,
            // An incomplete character at the very end (at most 3 bytes).
            Err(e) if e.error_len().is_none() => self.held.len() - e.valid_up_to(),
            Err(_) => 0,
        };
        let rest = self.held.split_off(self.held.len() - keep);
        std::mem::replace(&mut self.held, rest)
    }

    /// What is held at the end of the output.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn signals_by_name_with_or_without_sig() {
        assert_eq!(signal_number("SIGINT"), Some(2));
        assert_eq!(signal_number("kill"), Some(9));
        assert_eq!(signal_number("SIGNOPE"), None);
        assert_eq!(signal_name(15), Some("SIGTERM"));
        let bad = Input::try_from(ClientInput::Signal {
            signal: "NOPE".into(),
        });
        assert!(bad.unwrap_err().contains("SIGINT"));
    }

    #[test]
    fn frames_and_data_follow_the_contract() {
        let out = Event::Output {
            stream: Stream::Stderr,
            bytes: b"hi\xff".to_vec(),
        };
        assert_eq!(out.name(), "stderr");
        assert_eq!(out.data()["data_base64"], "aGn/");
        assert_eq!(out.frame()["type"], "stderr");
        let usage = Event::Usage {
            cpu_time_ms: 5,
            memory_bytes: None,
        };
        assert_eq!(
            usage.data(),
            json!({"cpu_time_ms": 5, "memory_bytes": null})
        );
        let frame: ClientInput = serde_json::from_str(r#"{"type":"stdin","data":"x"}"#).unwrap();
        assert_eq!(frame, ClientInput::Stdin { data: "x".into() });
        assert!(serde_json::from_str::<ClientInput>(r#"{"type":"stdin"}"#).is_err());
    }

    proptest! {
        #[test]
        fn chunks_rejoin_to_the_bytes_and_cut_no_character(text in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..200, 0..6)) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort();
            let mut chunks = Utf8Chunks::default();
            let mut out = Vec::new();
            let mut last = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                let chunk = chunks.push(&bytes[last..cut]);
                prop_assert!(std::str::from_utf8(&chunk).is_ok());
                out.extend(chunk);
                last = cut;
            }
            out.extend(chunks.finish());
            prop_assert_eq!(out, bytes);
        }
    }
}
