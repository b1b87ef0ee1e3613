//! Output capture with a hard cap: a job's output is never buffered past its limit.

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

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
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
    fn limit_to_truncates_and_flags() {
        let mut c = Capped::new(10);
        c.push(b"0123456789");
        c.limit_to(4);
        assert_eq!(c.bytes, b"0123");
        assert!(c.truncated);
    }
}
