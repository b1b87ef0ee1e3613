//! Judge0's `additional_files`: a zip unpacked beside the source. Entries are read up to the
//! server's caps on count and total size (counted as they decompress, so that a small zip
//! cannot expand past them), and none may name a path outside the work dir.

use std::io::{Cursor, Read};

use crate::config::LimitsConfig;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnpackError {
    #[error("is not a zip archive: {0}")]
    NotZip(String),
    #[error("holds `{0}`, a path outside the work dir")]
    Escapes(String),
    #[error("holds more than {0} files")]
    TooMany(usize),
    #[error("unpacks to more than {0} bytes")]
    TooLarge(u64),
}

/// The archive's files, directories left out: (relative path, content).
pub fn unpack(zip: &[u8], limits: &LimitsConfig) -> Result<Vec<(String, Vec<u8>)>, UnpackError> {
    let not_zip = |e: zip::result::ZipError| UnpackError::NotZip(e.to_string());
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(not_zip)?;
    let cap = limits.max_files_bytes.bytes();
    let mut total = 0u64;
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(not_zip)?;
        let Some(path) = entry.enclosed_name() else {
            return Err(UnpackError::Escapes(entry.name().to_string()));
        };
        if entry.is_dir() {
            continue;
        }
        if files.len() == limits.max_files {
            return Err(UnpackError::TooMany(limits.max_files));
        }
        let name = path.to_string_lossy().into_owned();
        let mut content = Vec::new();
        (&mut entry)
            .take(cap - total + 1)
            .read_to_end(&mut content)
            .map_err(|e| UnpackError::NotZip(e.to_string()))?;
        total += content.len() as u64;
        if total > cap {
            return Err(UnpackError::TooLarge(cap));
        }
        files.push((name, content));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default();
        for (name, content) in entries {
            out.start_file(*name, options).unwrap();
            out.write_all(content).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn files_come_out_with_their_paths() {
        let files = unpack(
            &zip(&[("util.py", b"X = 1"), ("data/in.txt", b"\xff\x00")]),
            &LimitsConfig::default(),
        )
        .unwrap();
        assert_eq!(
            files,
            [
                ("util.py".to_string(), b"X = 1".to_vec()),
                ("data/in.txt".to_string(), b"\xff\x00".to_vec())
            ]
        );
    }

    #[test]
    fn escapes_bombs_and_crowds_are_refused() {
        let limits = LimitsConfig::default();
        assert_eq!(
            unpack(&zip(&[("../../etc/x", b"")]), &limits),
            Err(UnpackError::Escapes("../../etc/x".into()))
        );
        let big = vec![0u8; limits.max_files_bytes.bytes() as usize + 1];
        assert_eq!(
            unpack(&zip(&[("big", &big)]), &limits),
            Err(UnpackError::TooLarge(limits.max_files_bytes.bytes()))
        );
        let names: Vec<String> = (0..=limits.max_files).map(|i| format!("f{i}")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        assert_eq!(
            unpack(&zip(&many), &limits),
            Err(UnpackError::TooMany(limits.max_files))
        );
        assert!(matches!(
            unpack(b"not a zip", &limits),
            Err(UnpackError::NotZip(_))
        ));
    }
}
