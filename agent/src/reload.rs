//! What a reload may change: derived from the configuration's own structure, key by key.
//!
//! The running and the new configuration are compared through their serialized form, so every
//! key the configuration has — today's and any added later — is compared; a key that differs is
//! applied live if it is under one of [`LIVE`], and refused by name otherwise. Nothing is
//! silently dropped.

use authstat_config::AgentConfig;
use serde_json::Value;

/// The keys a running agent applies (a key matches a prefix when it is that key or inside it).
pub(crate) const LIVE: &[&str] = &[
    // The sources are rebuilt from the current positions (nothing lost or read twice).
    "sources",
    // The API's tokens, scope and limits: each request uses the settings it started with.
    "api.auth",
    "api.scope",
    "api.stat_enabled",
    "api.cache_ttl_secs",
    "api.current_month_ttl_secs",
    "api.max_months",
    // The dashboard's login rules (its path and whether it is served need a restart).
    "api.dashboard.scope",
    "api.dashboard.session_ttl_secs",
    "api.dashboard.anonymous",
    // The log level (the format is fixed at start).
    "logging.level",
    // Read when the agent stops.
    "shutdown_grace_secs",
];

/// The keys whose values differ, as `a.b`, `sources[0].paths`, in document order.
pub(crate) fn changed_keys(old: &AgentConfig, new: &AgentConfig) -> Vec<String> {
    let as_value = |c: &AgentConfig| serde_json::to_value(c).expect("a configuration serializes");
    let mut keys = Vec::new();
    diff("", &as_value(old), &as_value(new), &mut keys);
    keys
}

fn diff(at: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                let missing = Value::Null;
                diff(
                    &join(key),
                    a.get(key).unwrap_or(&missing),
                    b.get(key).unwrap_or(&missing),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{at}[{i}]"), x, y, out);
            }
        }
        _ => out.push(at.to_owned()),
    }
}

/// Whether a changed `key` is applied live.
pub fn is_live(key: &str) -> bool {
    LIVE.iter().any(|prefix| {
        key == *prefix
            || key
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    })
}

/// The changed keys, split into those applied live and those that need a restart.
pub fn classify(old: &AgentConfig, new: &AgentConfig) -> (Vec<String>, Vec<String>) {
    changed_keys(old, new).into_iter().partition(|k| is_live(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The reference configuration of docs/config.md: every key there is.
    fn reference() -> AgentConfig {
        let doc = include_str!("../../docs/config.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + 8;
        let end = start + doc[start..].find("```").expect("its end");
        let env: HashMap<String, String> = [
            ("OTLP_KEY".to_string(), "k".to_string()),
            ("INTROSPECTION_SECRET".to_string(), "s".to_string()),
            ("JANS_STAT_PASSWORD".to_string(), "p".to_string()),
            ("ACTIVEMQ_USER".to_string(), "u".to_string()),
            ("ACTIVEMQ_PASSWORD".to_string(), "p".to_string()),
        ]
        .into();
        authstat_config::parse(&doc[start..end], "docs/config.md", &env)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every leaf: its key as `changed_keys` names it, and its JSON pointer.
    fn leaves(at: &str, pointer: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    let key = if at.is_empty() {
                        k.clone()
                    } else {
                        format!("{at}.{k}")
                    };
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    leaves(&key, &format!("{pointer}/{escaped}"), x, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    leaves(&format!("{at}[{i}]"), &format!("{pointer}/{i}"), x, out);
                }
            }
            _ => out.push((at.to_owned(), pointer.to_owned())),
        }
    }

    /// Other values a leaf can take that the configuration accepts.
    fn alternatives(v: &Value) -> Vec<Value> {
        let strings = [
            "end",
            "all",
            "json",
            "text",
            "grpc",
            "http_protobuf",
            "gzip",
            "none",
            "jwt",
            "static",
            "deny",
            "introspection",
            "java_string_hashcode",
            "murmur3",
            "debug",
            "beginning",
            "with_username",
            "0.0.0.0:9999",
            "/other/path",
            "TOKEN_REQUEST",
            "token_events",
        ];
        match v {
            Value::Bool(b) => vec![Value::Bool(!b)],
            Value::Number(n) => {
                let n = n.as_u64().unwrap_or(1);
                vec![
                    (n + 1).into(),
                    (n.saturating_sub(1).max(1)).into(),
                    16.into(),
                ]
            }
            Value::String(s) => {
                let mut out: Vec<Value> = strings.iter().map(|x| Value::from(*x)).collect();
                out.push(Value::from(format!("{s}x")));
                out.push(Value::from("a".repeat(64)));
                out
            }
            Value::Null => vec![Value::from(60), Value::from("other-node")],
            _ => Vec::new(),
        }
    }

    /// The reference in docs/config.md names every key the configuration has (a key added to
    /// the types but not to the reference would escape the test below).
    #[test]
    fn the_reference_names_every_key() {
        let doc = include_str!("../../docs/config.md");
        let start = doc.find("```yaml\n").expect("a yaml block") + 8;
        let text = &doc[start..start + doc[start..].find("```").expect("its end")];
        let mut keys = Vec::new();
        leaves(
            "",
            "",
            &serde_json::to_value(reference()).unwrap(),
            &mut keys,
        );
        let mut missing = Vec::new();
        for (key, _) in keys {
            let name = key
                .rsplit('.')
                .next()
                .unwrap()
                .split('[')
                .next()
                .unwrap()
                .to_owned();
            if !name.is_empty() && !text.contains(&format!("{name}:")) {
                missing.push(key);
            }
        }
        assert!(
            missing.is_empty(),
            "docs/config.md does not show {missing:?}"
        );
    }

    /// Every key of the reference configuration, changed once: the change is seen as exactly
    /// that key, and it is either applied live or refused naming it.
    #[test]
    fn every_key_is_applied_or_refused_by_name() {
        let old = reference();
        let base = serde_json::to_value(&old).unwrap();
        let mut keys = Vec::new();
        leaves("", "", &base, &mut keys);
        assert!(keys.len() > 40, "{keys:?}");
        let (mut live, mut refused) = (0, 0);
        // Keys that cannot change alone: a `type` comes with its own options (the change is
        // still seen, as the type and the options that differ).
        let with_others = |k: &str| k == "type" || k.ends_with(".type");
        for (key, pointer) in keys.iter().filter(|(k, _)| !with_others(k)) {
            let changed = alternatives(base.pointer(pointer).unwrap())
                .into_iter()
                .find_map(|value| {
                    let mut next = base.clone();
                    *next.pointer_mut(pointer).unwrap() = value;
                    let next: AgentConfig = serde_json::from_value(next).ok()?;
                    (next != old).then_some(next)
                })
                .unwrap_or_else(|| panic!("no other valid value for {key}"));
            let (applied, needs_restart) = classify(&old, &changed);
            let all: Vec<&String> = applied.iter().chain(&needs_restart).collect();
            assert_eq!(all, [key], "changing {key}");
            if applied.is_empty() {
                refused += 1;
            } else {
                live += 1;
            }
        }
        assert!(live > 5 && refused > 20, "{live} live, {refused} refused");
    }
}
