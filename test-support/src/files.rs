//! Writing logs the way an auth server does.

use std::io::Write;
use std::path::Path;

/// Appends `text` to `path` (created if missing), as a logger does.
pub fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

/// Appends `bytes` to `path` (created if missing).
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .write_all(bytes)
        .unwrap();
}
