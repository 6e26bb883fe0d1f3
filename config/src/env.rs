//! `${VAR}` and `${VAR:-default}` in the configuration text.

use std::collections::HashMap;

/// Where variables come from: the process environment in the agent, a map in tests (so tests
/// never change the process environment).
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// A variable that is unset and has no default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MissingVar {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`. Comments are expanded too
/// (harmless), so line and column numbers of everything else stay as the user wrote them as long
/// as values hold no newline.
pub(crate) fn expand(text: &str, env: &dyn Env) -> Result<String, MissingVar> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            consumed += at + 2;
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            consumed += at + 1;
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            out.push('$');
            consumed += at + 1;
            rest = after;
            continue;
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        if !valid {
            out.push('$');
            consumed += at + 1;
            rest = after;
            continue;
        }
        match env
            .var(name)
            .filter(|v| !(v.is_empty() && default.is_some()))
        {
            Some(value) => out.push_str(&value),
            None => match default {
                Some(default) => out.push_str(default),
                None => {
                    let offset = consumed + at;
                    let line = text[..offset].matches('\n').count() + 1;
                    let column = offset - text[..offset].rfind('\n').map_or(0, |n| n + 1) + 1;
                    return Err(MissingVar {
                        name: name.to_owned(),
                        line,
                        column,
                    });
                }
            },
        }
        consumed += at + 2 + end + 1;
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_variables_and_defaults() {
        let e = env(&[("DB_PASSWORD", "s3cret"), ("EMPTY", "")]);
        assert_eq!(
            expand("url: pg://u:${DB_PASSWORD}@h", &e).unwrap(),
            "url: pg://u:s3cret@h"
        );
        assert_eq!(expand("node: ${POD:-node-1}", &e).unwrap(), "node: node-1");
        assert_eq!(expand("x: ${EMPTY:-fallback}", &e).unwrap(), "x: fallback");
        assert_eq!(expand("x: ${EMPTY}", &e).unwrap(), "x: ");
        assert_eq!(
            expand("cost: $$5 and $5 and ${not valid}", &e).unwrap(),
            "cost: $5 and $5 and ${not valid}"
        );
        assert_eq!(expand("a: ${X:-}", &e).unwrap(), "a: ");
    }

    #[test]
    fn a_missing_variable_names_its_line_and_column() {
        let err = expand("a: 1\nb: x${NOPE}\n", &env(&[])).unwrap_err();
        assert_eq!(
            err,
            MissingVar {
                name: "NOPE".into(),
                line: 2,
                column: 5
            }
        );
    }
}
