//! Configured paths: a file, or a pattern in its file name (globset's syntax: `*`, `?`,
//! `[a-z]`, `[!x]`, `{a,b}`, `\` escapes; no `/` in a wildcard).

use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// Characters that make a file name a pattern.
const SPECIAL: [char; 4] = ['*', '?', '[', '{'];

/// One configured path, resolved to an absolute directory and a file name or pattern.
#[derive(Debug, Clone)]
pub struct PathPattern {
    dir: PathBuf,
    name: String,
    /// `None`: the name is taken literally.
    matcher: Option<GlobMatcher>,
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        (&self.dir, &self.name, self.matcher.is_some())
            == (&other.dir, &other.name, other.matcher.is_some())
    }
}

impl Eq for PathPattern {}

impl PathPattern {
    /// `path` relative to `base` (the configuration file's directory) unless absolute.
    /// Wildcards are allowed in the file name only; an error says what is wrong.
    pub fn new(base: &Path, path: &str) -> Result<Self, String> {
        let full = base.join(path);
        let (Some(name), Some(dir)) = (full.file_name(), full.parent()) else {
            return Err("not a file path".into());
        };
        let name = name.to_str().ok_or("not UTF-8")?.to_owned();
        if dir.to_str().is_some_and(|d| d.contains(SPECIAL)) {
            return Err("wildcards are allowed in the file name only".into());
        }
        let matcher = if name.contains(SPECIAL) {
            let glob = GlobBuilder::new(&name)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("not a valid pattern: {}", e.kind()))?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            matcher,
        })
    }

    /// Exactly the file `path` (absolute), whatever characters its name has.
    pub fn literal(path: &Path) -> Option<Self> {
        Some(Self {
            dir: path.parent()?.to_path_buf(),
            name: path.file_name()?.to_str()?.to_owned(),
            matcher: None,
        })
    }

    /// The directory holding the matches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name_matches(&self, name: &str) -> bool {
        match &self.matcher {
            Some(m) => m.is_match(name),
            None => name == self.name,
        }
    }

    /// Whether `path` (absolute, as the directory is) is one this pattern names.
    pub(crate) fn matches_path(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path())
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| self.name_matches(n))
    }

    /// The files that match now, sorted.
    pub fn matches(&self) -> io::Result<Vec<PathBuf>> {
        if self.matcher.is_none() {
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
                && self.name_matches(name)
            {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        PathPattern::new(Path::new("/d"), pattern)
            .unwrap()
            .matches_path(&Path::new("/d").join(name))
    }

    #[test]
    fn wildcards() {
        assert!(m("jans-auth_audit*.log", "jans-auth_audit.log"));
        assert!(m(
            "jans-auth_audit*.log",
            "jans-auth_audit-2024-02-01-1.log"
        ));
        assert!(!m("jans-auth_audit*.log", "jans-auth_audit.log.gz"));
        assert!(m("a?c", "abc") && !m("a?c", "ac"));
        assert!(m("x[0-9].log", "x7.log") && !m("x[!0-9].log", "x7.log"));
        assert!(m("*", "x"));
        assert!(m("**x", "ax"));
        assert!(m("{audit,tokens}*.log", "tokens-1.log") && !m("{audit,tokens}*.log", "x.log"));
        assert!(m(r"a\*b.log", "a*b.log") && !m(r"a\*b.log", "axb.log"));
        assert!(m("plain.log", "plain.log") && !m("plain.log", "plain.log.1"));
    }

    #[test]
    fn wildcards_only_in_the_file_name_and_bad_patterns_are_errors() {
        let e = PathPattern::new(Path::new("/base"), "logs/*/a.log").unwrap_err();
        assert!(e.contains("file name only"), "{e}");
        let e = PathPattern::new(Path::new("/base"), "logs/a[.log").unwrap_err();
        assert!(e.contains("not a valid pattern"), "{e}");
        let p = PathPattern::new(Path::new("/base"), "logs/a*.log").unwrap();
        assert_eq!(p.dir(), Path::new("/base/logs"));
        let p = PathPattern::new(Path::new("/base"), "/abs/a.log").unwrap();
        assert_eq!(p.dir(), Path::new("/abs"));
    }

    #[test]
    fn a_literal_path_may_hold_pattern_characters() {
        let p = PathPattern::literal(Path::new("/logs/audit[1].log")).unwrap();
        assert!(p.matches_path(Path::new("/logs/audit[1].log")));
        assert!(!p.matches_path(Path::new("/logs/audit1.log")));
    }
}
