//! Output capture with a hard cap: a job's output is never buffered past its limit. For
//! compiled languages the compile step's block is split off the start of stderr first.

use super::bootstrap::{CompileParser, CompileReport, Parsed, REPORT_ROOM};

/// Both streams of one execution.
pub struct Capture {
    pub stdout: Capped,
    pub stderr: Capped,
    /// Still waiting for the compile block (compiled languages only).
    compile: Option<CompileParser>,
    pub compiled: Option<CompileReport>,
    /// What the bootstrap writes last on stdout, and on stderr before its report.
    stdout_end: Vec<u8>,
    report_start: Vec<u8>,
    stdout_ended: bool,
}

/// What a chunk of output changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    More,
    /// A stream passed its cap.
    Overflow,
    /// The compile step's report is in; the program starts now.
    Compiled,
}

impl Capture {
    /// `cap` applies to each stream; stderr keeps room beyond it for the bootstrap's report.
    pub fn new(cap: usize, nonce: &str, compiles: bool) -> Self {
        Capture {
            stdout: Capped::new(cap),
            stderr: Capped::new(cap + REPORT_ROOM),
            compile: compiles.then(|| CompileParser::new(nonce)),
            compiled: None,
            stdout_end: format!("\x1e{nonce}\n").into_bytes(),
            report_start: format!("\x1e{nonce} ").into_bytes(),
            stdout_ended: false,
        }
    }

    /// Both streams carry the bootstrap's last words: all output is in, the job is over.
    pub fn complete(&self) -> bool {
        let stderr = &self.stderr.bytes;
        self.stdout_ended
            && stderr.ends_with(b"\n")
            && stderr[stderr.len().saturating_sub(REPORT_ROOM)..]
                .windows(self.report_start.len())
                .any(|w| w == self.report_start.as_slice())
    }

    /// True until the compile step has reported (never true for interpreted languages).
    pub fn compiling(&self) -> bool {
        self.compile.is_some()
    }

    /// Drops the end marker from stdout if it arrived split across chunks (then the stream's
    /// end, not the marker, ended the job).
    pub fn strip_stdout_end(&mut self) {
        if !self.stdout_ended && self.stdout.bytes.ends_with(&self.stdout_end) {
            let len = self.stdout.bytes.len() - self.stdout_end.len();
            self.stdout.bytes.truncate(len);
            self.stdout_ended = true;
        }
    }

    pub fn stdout(&mut self, chunk: &[u8]) -> Event {
        // The end marker comes in one write; it is not the job's output.
        let chunk = match chunk.strip_suffix(self.stdout_end.as_slice()) {
            Some(output) => {
                self.stdout_ended = true;
                output
            }
            None => chunk,
        };
        overflow_or(self.stdout.push(chunk), Event::More)
    }

    pub fn stderr(&mut self, chunk: &[u8]) -> Event {
        let Some(parser) = self.compile.as_mut() else {
            return overflow_or(self.stderr.push(chunk), Event::More);
        };
        match parser.feed(chunk) {
            Parsed::Pending => Event::More,
            Parsed::Done { report, rest } => {
                self.compile = None;
                self.compiled = Some(report);
                overflow_or(self.stderr.push(&rest), Event::Compiled)
            }
            Parsed::NotABlock(bytes) => {
                self.compile = None;
                overflow_or(self.stderr.push(&bytes), Event::More)
            }
        }
    }
}

fn overflow_or(overflowed: bool, otherwise: Event) -> Event {
    if overflowed {
        Event::Overflow
    } else {
        otherwise
    }
}

/// One output stream, kept up to `cap` bytes.
#[derive(Debug, Default)]
pub struct Capped {
    pub bytes: Vec<u8>,
    cap: usize,
    /// The stream produced more than `cap` bytes; `bytes` holds exactly the first `cap`.
    pub truncated: bool,
}

impl Capped {
    pub fn new(cap: usize) -> Self {
        Capped {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Appends a chunk, dropping whatever passes the cap. Returns true once the cap is passed.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        let room = self.cap - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.truncated = true;
        } else {
            self.bytes.extend_from_slice(chunk);
        }
        self.truncated
    }

    /// Lowers the cap after the fact (used once the bootstrap's report is removed from stderr).
    pub fn limit_to(&mut self, cap: usize) {
        if self.bytes.len() > cap {
            self.bytes.truncate(cap);
            self.truncated = true;
        }
        self.cap = cap;
    }

    /// The output as text, and the exact bytes in base64 when they are not valid UTF-8.
    pub fn text(&self) -> (String, Option<String>) {
        match std::str::from_utf8(&self.bytes) {
            Ok(text) => (text.to_string(), None),
            Err(_) => {
                use base64::Engine;
                let exact = base64::engine::general_purpose::STANDARD.encode(&self.bytes);
                (
                    String::from_utf8_lossy(&self.bytes).into_owned(),
                    Some(exact),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_exactly_the_cap_and_flags_the_overflow() {
        let mut c = Capped::new(5);
        assert!(!c.push(b"abc"));
        assert!(!c.push(b"de"));
        assert!(!c.truncated);
        assert!(c.push(b"f"));
        assert_eq!(c.bytes, b"abcde");
        assert!(c.push(b"more"));
        assert_eq!(c.bytes, b"abcde");
    }

    #[test]
    fn invalid_utf8_comes_back_exactly_in_base64() {
        let mut c = Capped::new(10);
        c.push(b"ok\0");
        assert_eq!(c.text(), ("ok\0".to_string(), None));
        c.push(&[0xff, 0xfe]);
        let (text, exact) = c.text();
        assert_eq!(text, "ok\0\u{fffd}\u{fffd}");
        assert_eq!(exact.as_deref(), Some("b2sA//4="));
    }

    #[test]
    fn the_bootstraps_last_words_on_both_streams_complete_the_capture() {
        let mut c = Capture::new(64, "n0", false);
        c.stdout(b"hello\n");
        c.stderr(b"warning\n");
        assert!(!c.complete());
        c.stdout(b"bye\n\x1en0\n");
        assert_eq!(c.stdout.bytes, b"hello\nbye\n", "the marker is not output");
        assert!(!c.complete(), "the report has not come yet");
        c.stderr(b"\x1en0 0 1024 5 0");
        assert!(!c.complete(), "a report is whole only with its newline");
        c.stderr(b"\n");
        assert!(c.complete());
    }

    #[test]
    fn a_forged_marker_without_the_nonce_is_output() {
        let mut c = Capture::new(64, "n0", false);
        c.stdout(b"\x1exx\n");
        c.stderr(b"\x1exx 0 1 1 0\n");
        assert!(!c.complete());
        assert_eq!(c.stdout.bytes, b"\x1exx\n");
    }

    #[test]
    fn a_marker_split_across_chunks_is_stripped_at_the_end() {
        let mut c = Capture::new(64, "n0", false);
        c.stdout(b"out\x1e");
        c.stdout(b"n0\n");
        c.strip_stdout_end();
        assert_eq!(c.stdout.bytes, b"out");
    }

    #[test]
    fn limit_to_truncates_and_flags() {
        let mut c = Capped::new(10);
        c.push(b"0123456789");
        c.limit_to(4);
        assert_eq!(c.bytes, b"0123");
        assert!(c.truncated);
    }
}
