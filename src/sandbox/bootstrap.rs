//! The in-container bootstrap: how code and stdin travel in over the attached stdin, and how
//! the compile step's output (at the start of stderr) and the final report (exit code, memory
//! peak, CPU time; at the end of stderr) travel back.

use std::time::Duration;

/// Shell script run by `sh -c` in every job container; see the comments inside it.
pub const SCRIPT: &str = include_str!("bootstrap.sh");

/// Exit codes the bootstrap uses when it could not unpack the job (no report follows).
pub const EXIT_NO_NONCE: i64 = 120;
pub const EXIT_UNPACK_FAILED: i64 = 121;

/// Room kept on stderr beyond the job's cap so that the report itself never trips it.
pub const REPORT_ROOM: usize = 128;

/// What the bootstrap needs to know before the files.
pub struct Header<'a> {
    pub nonce: &'a str,
    /// The program's CPU limit (RLIMIT_CPU, whole seconds, rounded up).
    pub cpu_time: Duration,
    /// RLIMIT_NPROC for the program, where the pids cgroup cannot count its processes (gVisor).
    pub nproc: Option<i64>,
    /// The compile command and its time limit, for compiled languages.
    pub compile: Option<(&'a str, Duration)>,
    /// Cap on each compile stream.
    pub compile_cap: u64,
}

/// Builds the bytes written to the container's stdin.
pub fn payload(header: &Header, files: &[(&str, &[u8])], stdin: &[u8]) -> Vec<u8> {
    let size = 256 + stdin.len() + files.iter().map(|f| f.1.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let (limit, command) = match header.compile {
        Some((command, limit)) => (format!("{:.3}", limit.as_secs_f64()), command),
        None => ("-".to_string(), ""),
    };
    let cpu = header.cpu_time.as_secs_f64().ceil().max(1.0) as u64;
    let (nonce, cap) = (header.nonce, header.compile_cap);
    let nproc = header.nproc.map_or("-".to_string(), |n| n.to_string());
    let lines = format!("{nonce}\n{cpu}\n{nproc}\n{limit}\n{cap}\n{command}\n");
    out.extend_from_slice(lines.as_bytes());
    for (name, content) in files {
        out.extend_from_slice(format!("{} {}\n", content.len(), name).as_bytes());
        out.extend_from_slice(content);
    }
    out.extend_from_slice(b"-\n");
    out.extend_from_slice(stdin);
    out
}

/// What the bootstrap measured after the program ended. Memory and CPU are None where the
/// runtime shows no cgroup files (gVisor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub exit_code: i64,
    pub memory_peak_bytes: Option<u64>,
    pub cpu_time: Option<Duration>,
    /// Processes the kernel's OOM killer ended in the container.
    pub oom_kills: Option<u64>,
}

/// Finds the report for `nonce` at the end of `stderr`, removes it, and parses it.
/// The nonce keeps a program from passing off its own output as the report.
pub fn take_report(stderr: &mut Vec<u8>, nonce: &str) -> Option<Report> {
    let marker = [&[0x1e][..], nonce.as_bytes(), b" "].concat();
    let start = stderr
        .windows(marker.len())
        .rposition(|w| w == marker.as_slice())?;
    let line = std::str::from_utf8(&stderr[start + marker.len()..]).ok()?;
    let mut fields = line.trim_end().split(' ');
    let exit_code = fields.next()?.parse().ok()?;
    // "-" stands for a measure the runtime does not offer.
    let mut measure = || match fields.next()? {
        "-" => Some(None),
        n => n.parse::<u64>().ok().map(Some),
    };
    let memory_peak_bytes = measure()?;
    let cpu_ns = measure()?;
    let oom_kills = measure()?;
    stderr.truncate(start);
    Some(Report {
        exit_code,
        memory_peak_bytes,
        cpu_time: cpu_ns.map(Duration::from_nanos),
        oom_kills,
    })
}

/// What the compile step printed and how it ended, as the bootstrap reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileReport {
    pub exit_code: i64,
    pub duration_ms: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// Reads the compile block off the start of stderr, however the stream splits it.
pub struct CompileParser {
    marker: Vec<u8>,
    buf: Vec<u8>,
    /// Parsed header (report without bytes) and the body length, once the header line is in.
    header: Option<(CompileReport, usize, usize)>,
}

pub enum Parsed {
    /// Need more bytes.
    Pending,
    /// The block is complete; `rest` is what followed it on stderr.
    Done {
        report: CompileReport,
        rest: Vec<u8>,
    },
    /// Stderr did not start with a compile block (e.g. the bootstrap failed): plain stderr.
    NotABlock(Vec<u8>),
}

/// Longest header line the bootstrap writes, with room to spare.
const MAX_HEADER: usize = 256;

impl CompileParser {
    pub fn new(nonce: &str) -> Self {
        CompileParser {
            marker: [&[0x1e][..], nonce.as_bytes(), b" compile "].concat(),
            buf: Vec::new(),
            header: None,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Parsed {
        self.buf.extend_from_slice(chunk);
        if self.header.is_none() {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                return self.undecided();
            };
            match self.parse_header(end) {
                Some(header) => {
                    self.header = Some(header);
                    self.buf.drain(..=end);
                }
                None => return Parsed::NotABlock(std::mem::take(&mut self.buf)),
            }
        }
        let (_, out, err) = self.header.as_ref().expect("header parsed");
        if self.buf.len() < out + err {
            return Parsed::Pending;
        }
        let (mut report, out, err) = self.header.take().expect("header parsed");
        let rest = self.buf.split_off(out + err);
        report.stderr = self.buf.split_off(out);
        report.stdout = std::mem::take(&mut self.buf);
        debug_assert_eq!(report.stderr.len(), err);
        Parsed::Done { report, rest }
    }

    /// No newline yet: keep waiting while the bytes can still become a header.
    fn undecided(&mut self) -> Parsed {
        let n = self.buf.len().min(self.marker.len());
        if self.buf[..n] != self.marker[..n] || self.buf.len() > MAX_HEADER {
            return Parsed::NotABlock(std::mem::take(&mut self.buf));
        }
        Parsed::Pending
    }

    fn parse_header(&self, end: usize) -> Option<(CompileReport, usize, usize)> {
        let line = self.buf[..end].strip_prefix(self.marker.as_slice())?;
        let numbers: Vec<u64> = std::str::from_utf8(line)
            .ok()?
            .split(' ')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [exit_code, duration_ms, out, err, out_total, err_total] = numbers[..] else {
            return None;
        };
        let report = CompileReport {
            exit_code: exit_code as i64,
            duration_ms,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: out_total > out,
            stderr_truncated: err_total > err,
        };
        Some((report, out as usize, err as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_frames_header_files_then_stdin() {
        let cpu_time = Duration::from_millis(1500);
        let header = Header {
            nonce: "n1",
            cpu_time,
            nproc: None,
            compile: None,
            compile_cap: 10,
        };
        let p = payload(&header, &[("main.py", b"print(1)"), ("e", b"")], b"in");
        assert_eq!(p, b"n1\n2\n-\n-\n10\n\n8 main.py\nprint(1)0 e\n-\nin");
        let compile = Some(("cc x.c", Duration::from_millis(2500)));
        let header = Header {
            nonce: "n1",
            cpu_time,
            nproc: Some(64),
            compile,
            compile_cap: 10,
        };
        assert!(payload(&header, &[], b"").starts_with(b"n1\n2\n64\n2.500\n10\ncc x.c\n-\n"));
    }

    #[test]
    fn the_compile_block_is_read_across_chunks() {
        let block = b"\x1enn compile 1 42 3 4 3 9\noutERR!run stderr";
        for split in 0..block.len() {
            let mut parser = CompileParser::new("nn");
            let first = parser.feed(&block[..split]);
            // Once done, later bytes are plain stderr and no longer go through the parser.
            let (report, rest) = match first {
                Parsed::Done { report, mut rest } => {
                    rest.extend_from_slice(&block[split..]);
                    (report, rest)
                }
                _ => match parser.feed(&block[split..]) {
                    Parsed::Done { report, rest } => (report, rest),
                    _ => panic!("split at {split}: not done"),
                },
            };
            assert_eq!(report.exit_code, 1);
            assert_eq!(report.duration_ms, 42);
            assert_eq!(report.stdout, b"out");
            assert_eq!(report.stderr, b"ERR!");
            assert!(!report.stdout_truncated && report.stderr_truncated);
            assert_eq!(rest, b"run stderr");
        }
    }

    #[test]
    fn stderr_without_a_compile_block_passes_through() {
        let mut parser = CompileParser::new("nn");
        let Parsed::NotABlock(bytes) = parser.feed(b"dd: error\n") else {
            panic!()
        };
        assert_eq!(bytes, b"dd: error\n");
        let mut parser = CompileParser::new("nn");
        let Parsed::NotABlock(_) = parser.feed(b"\x1ewrong compile 0 0 0 0 0 0\n") else {
            panic!()
        };
    }

    #[test]
    fn report_is_taken_from_the_end_of_stderr() {
        let mut stderr = b"oops\n\x1eabc 3 1024 2000000 1\n".to_vec();
        let report = take_report(&mut stderr, "abc").unwrap();
        assert_eq!(stderr, b"oops\n");
        assert_eq!(report.exit_code, 3);
        assert_eq!(report.memory_peak_bytes, Some(1024));
        assert_eq!(report.cpu_time, Some(Duration::from_millis(2)));
        assert_eq!(report.oom_kills, Some(1));
        let mut gvisor = b"\x1eabc 0 - - -\n".to_vec();
        let report = take_report(&mut gvisor, "abc").unwrap();
        assert_eq!(
            (report.memory_peak_bytes, report.cpu_time, report.oom_kills),
            (None, None, None)
        );
    }

    #[test]
    fn a_forged_report_with_the_wrong_nonce_is_ignored() {
        let mut stderr = b"\x1eguess 0 1 1 0\n".to_vec();
        assert_eq!(take_report(&mut stderr, "abc"), None);
        assert_eq!(stderr, b"\x1eguess 0 1 1 0\n");
    }
}
