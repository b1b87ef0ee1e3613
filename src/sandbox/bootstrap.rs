//! The in-container bootstrap: how code and stdin travel in over the attached stdin, and how
//! the final report (exit code, memory peak, CPU time) travels back at the end of stderr.

use std::time::Duration;

/// Shell script run by `sh -c` in every job container; see the comments inside it.
pub const SCRIPT: &str = include_str!("bootstrap.sh");

/// Exit codes the bootstrap uses when it could not unpack the job (no report follows).
pub const EXIT_NO_NONCE: i64 = 120;
pub const EXIT_UNPACK_FAILED: i64 = 121;

/// Room kept on stderr beyond the job's cap so that the report itself never trips it.
pub const REPORT_ROOM: usize = 128;

/// Builds the bytes written to the container's stdin.
pub fn payload(nonce: &str, files: &[(&str, &[u8])], stdin: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(64 + stdin.len() + files.iter().map(|f| f.1.len()).sum::<usize>());
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'\n');
    for (name, content) in files {
        out.extend_from_slice(format!("{} {}\n", content.len(), name).as_bytes());
        out.extend_from_slice(content);
    }
    out.extend_from_slice(b"-\n");
    out.extend_from_slice(stdin);
    out
}

/// What the bootstrap measured after the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub exit_code: i64,
    pub memory_peak_bytes: u64,
    pub cpu_time: Duration,
}

/// Finds the report for `nonce` at the end of `stderr`, removes it, and parses it.
/// The nonce keeps a program from passing off its own output as the report.
pub fn take_report(stderr: &mut Vec<u8>, nonce: &str) -> Option<Report> {
    let marker = [&[0x1e][..], nonce.as_bytes(), b" "].concat();
    let start = stderr
        .windows(marker.len())
        .rposition(|w| w == marker.as_slice())?;
    let line = std::str::from_utf8(&stderr[start + marker.len()..]).ok()?;
    let mut fields = line.trim_end().split(' ').map(str::parse::<u64>);
    let exit_code = fields.next()?.ok()? as i64;
    let memory_peak_bytes = fields.next()?.ok()?;
    let cpu_ns = fields.next()?.ok()?;
    stderr.truncate(start);
    Some(Report {
        exit_code,
        memory_peak_bytes,
        cpu_time: Duration::from_nanos(cpu_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_frames_files_then_stdin() {
        let p = payload("n1", &[("main.py", b"print(1)"), ("e", b"")], b"in");
        assert_eq!(p, b"n1\n8 main.py\nprint(1)0 e\n-\nin");
    }

    #[test]
    fn report_is_taken_from_the_end_of_stderr() {
        let mut stderr = b"oops\n\x1eabc 3 1024 2000000\n".to_vec();
        let report = take_report(&mut stderr, "abc").unwrap();
        assert_eq!(stderr, b"oops\n");
        assert_eq!(report.exit_code, 3);
        assert_eq!(report.memory_peak_bytes, 1024);
        assert_eq!(report.cpu_time, Duration::from_millis(2));
    }

    #[test]
    fn a_forged_report_with_the_wrong_nonce_is_ignored() {
        let mut stderr = b"\x1eguess 0 1 1\n".to_vec();
        assert_eq!(take_report(&mut stderr, "abc"), None);
        assert_eq!(stderr, b"\x1eguess 0 1 1\n");
    }
}
