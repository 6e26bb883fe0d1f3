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

/// Where YAML comments are: byte ranges from a `#` that starts a comment (at the start of a
/// line or after a space, outside quotes and block scalars) to the end of its line.
fn comments(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let mut offset = 0;
    // The indentation of the line that opened a block scalar (`key: |`): deeper lines are text.
    let mut block: Option<usize> = None;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\n', '\r']);
        let indent = content.len() - content.trim_start_matches(' ').len();
        if let Some(opened) = block {
            if content.trim().is_empty() || indent > opened {
                offset += line.len();
                continue;
            }
            block = None;
        }
        let mut quote: Option<char> = None;
        // After `\` in a double-quoted scalar, or the first `'` of `''` in a single-quoted one.
        let mut escaped = false;
        let mut previous: Option<char> = None;
        let mut code_end = content.len();
        for (i, c) in content.char_indices() {
            match quote {
                Some(_) if escaped => escaped = false,
                Some('"') if c == '\\' => escaped = true,
                Some('\'') if c == '\'' && content[i + 1..].starts_with('\'') => escaped = true,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '#' && previous.is_none_or(char::is_whitespace) => {
                    spans.push(offset + i..offset + content.len());
                    code_end = i;
                    break;
                }
                // A quote opens a quoted scalar only where a scalar starts.
                None if (c == '"' || c == '\'')
                    && content[..i]
                        .trim_end()
                        .chars()
                        .last()
                        .is_none_or(|p| matches!(p, ':' | '-' | '[' | '{' | ',' | '?')) =>
                {
                    quote = Some(c);
                }
                None => {}
            }
            previous = Some(c);
        }
        let code = content[..code_end].trim_end();
        let indicator = code.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
        if (indicator.ends_with(" |")
            || indicator.ends_with(" >")
            || indicator == "|"
            || indicator == ">")
            || indicator.ends_with(":|")
            || indicator.ends_with(":>")
        {
            block = Some(indent);
        }
        offset += line.len();
    }
    spans
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`. Comments are left as they
/// are (a commented-out `${DB_PASSWORD}` needs no variable). Line and column numbers of
/// everything else stay as the user wrote them as long as values hold no newline.
pub(crate) fn expand(text: &str, env: &dyn Env) -> Result<String, MissingVar> {
    let comments = comments(text);
    let in_comment = |offset: usize| comments.iter().any(|c| c.contains(&offset));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut consumed = 0;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if in_comment(consumed + at) {
            out.push('$');
            consumed += at + 1;
            rest = after;
            continue;
        }
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
    fn comments_are_not_expanded() {
        let e = env(&[("SET", "v")]);
        let text = "# url: pg://u:${DB_PASSWORD}@h\n\
                    a: ${SET} # old: ${GONE}\n\
                    b: \"x # ${SET}\"   # ${GONE}\n\
                    c: 'it''s # ${SET}'\n\
                    d: it's ${SET} # ${GONE}\n\
                    e: a#${SET}\n\
                    f: |\n  # ${SET} is text here\n  more\n\
                    g: ${SET}\n";
        assert_eq!(
            expand(text, &e).unwrap(),
            "# url: pg://u:${DB_PASSWORD}@h\n\
             a: v # old: ${GONE}\n\
             b: \"x # v\"   # ${GONE}\n\
             c: 'it''s # v'\n\
             d: it's v # ${GONE}\n\
             e: a#v\n\
             f: |\n  # v is text here\n  more\n\
             g: v\n"
        );
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
