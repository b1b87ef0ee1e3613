//! Output capture with a hard cap: a job's output is never buffered past its limit, whatever
//! the executor in the cell sends.

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
}
