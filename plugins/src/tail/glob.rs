//! Configured paths: a file, or a pattern with `*`, `?` and `[…]` in its file name.

use std::io;
use std::path::{Path, PathBuf};

/// One configured path, resolved to an absolute directory and a file-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    dir: PathBuf,
    name: String,
}

impl PathPattern {
    /// `path` relative to `base` (the configuration file's directory) unless absolute.
    /// Wildcards are allowed in the file name only; `None` if the directory part has one.
    pub fn new(base: &Path, path: &str) -> Option<Self> {
        let full = base.join(path);
        let name = full.file_name()?.to_str()?.to_owned();
        let dir = full.parent()?.to_path_buf();
        if dir.to_str().is_some_and(|d| d.contains(['*', '?', '['])) {
            return None;
        }
        Some(Self { dir, name })
    }

    /// The directory holding the matches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `path` (absolute, as the directory is) is one this pattern names.
    pub fn matches_path(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| wildcard_match(self.name.as_bytes(), n.as_bytes()))
    }

    /// The files that match now, sorted.
    pub fn matches(&self) -> io::Result<Vec<PathBuf>> {
        if !self.name.contains(['*', '?', '[']) {
            let path = self.dir.join(&self.name);
            return Ok(if path.exists() {
                vec![path]
            } else {
                Vec::new()
            });
        }
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && wildcard_match(self.name.as_bytes(), name.as_bytes())
            {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// `*` any run, `?` one byte, `[abc]` / `[a-z]` / `[!x]` a class.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard_match(rest, &name[i..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard_match(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return name.first() == Some(&b'[') && wildcard_match(rest, &name[1..]);
            };
            let Some((&c, name_rest)) = name.split_first() else {
                return false;
            };
            let (negate, class) = match rest[..close].split_first() {
                Some((b'!', class)) => (true, class),
                _ => (false, &rest[..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && wildcard_match(&rest[close + 1..], name_rest)
        }
        Some((&p, rest)) => name.first() == Some(&p) && wildcard_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let m = |p: &str, n: &str| wildcard_match(p.as_bytes(), n.as_bytes());
        assert!(m("jans-auth_audit*.log", "jans-auth_audit.log"));
        assert!(m(
            "jans-auth_audit*.log",
            "jans-auth_audit-2024-02-01-1.log"
        ));
        assert!(!m("jans-auth_audit*.log", "jans-auth_audit.log.gz"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("x[0-9].log", "x7.log") && !m("x[!0-9].log", "x7.log"));
        assert!(m("*", "") && m("**x", "ax"));
    }

    #[test]
    fn wildcards_only_in_the_file_name() {
        assert!(PathPattern::new(Path::new("/base"), "logs/*/a.log").is_none());
        let p = PathPattern::new(Path::new("/base"), "logs/a*.log").unwrap();
        assert_eq!(p.dir(), Path::new("/base/logs"));
        let p = PathPattern::new(Path::new("/base"), "/abs/a.log").unwrap();
        assert_eq!(p.dir(), Path::new("/abs"));
    }
}
