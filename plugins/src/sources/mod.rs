//! The source kinds (`type:` of a source), one module each, registered in [`kinds`].

pub mod activemq;
pub mod file;
pub mod janssen;

use crate::registry::SourceKind;

/// authstat's own source kinds.
pub(crate) fn kinds() -> Vec<SourceKind> {
    vec![
        SourceKind {
            name: "file",
            about: "files followed through rotation (docs/tailing.md)",
            reads_records: true,
            check: file::check,
            build: file::build_file,
            follows: Some(file::followed),
            note: None,
            certificates: None,
            history: None,
        },
        SourceKind {
            name: activemq::ACTIVEMQ,
            about: "Janssen's audit queue on ActiveMQ, over STOMP, acknowledged after each stored flush (docs/activemq.md)",
            reads_records: true,
            check: activemq::check,
            build: activemq::build,
            follows: None,
            note: None,
            certificates: Some(activemq::certificates),
            history: None,
        },
        SourceKind {
            name: janssen::JANSSEN_STAT_ENTRIES,
            about: "Janssen's own statistics rows (jansStatEntry), stored as snapshots (docs/janssen.md)",
            reads_records: false,
            check: janssen::check,
            build: janssen::build,
            follows: None,
            note: Some(janssen::users_rule),
            certificates: None,
            history: Some(janssen::history),
        },
    ]
}

#[cfg(test)]
mod tests {

    /// The configuration's loader with the built-in plugins' checks: `file:line:column: key:
    /// message`.
    fn err(text: &str) -> authstat_config::ConfigError {
        let plugins = crate::builtin();
        authstat_config::parse_checked(
            text,
            "authstat.yaml",
            &std::collections::HashMap::<String, String>::new(),
            &|c| plugins.check_config(c),
        )
        .unwrap_err()
    }

    fn at(e: &authstat_config::ConfigError) -> (Option<usize>, Option<&str>) {
        (e.line, e.key.as_deref())
    }

    /// A format named as the type (the shape before `type` and `format` were apart) is said to
    /// be a format, where it stands.
    #[test]
    fn a_format_given_as_the_type_is_named_a_format() {
        let e = err("sources:\n  - name: q\n    type: token_events\n    paths: [x]\n");
        assert_eq!(at(&e), (Some(3), Some("sources[0].type")), "{e}");
        assert!(e.message.contains("`token_events` is a format"), "{e}");
    }

    #[test]
    fn each_kind_checks_its_options_where_they_stand() {
        let e = err(
            "sources:\n  - name: q\n    type: file\n    format: janssen_audit\n    paths: [x]\n    pathz: [y]\n",
        );
        assert_eq!(at(&e), (Some(6), Some("sources[0].pathz")), "{e}");
        assert!(e.message.contains("unknown field `pathz`"), "{e}");
        assert!(e.to_string().starts_with("authstat.yaml:6:"), "{e}");

        let e = err(
            "sources:\n  - {name: q, type: file, format: janssen_audit, paths: [x], poll_interval_ms: 0}\n",
        );
        assert_eq!(
            at(&e),
            (Some(2), Some("sources[0].poll_interval_ms")),
            "{e}"
        );
        assert!(e.message.contains("must be greater than 0"), "{e}");

        let e = err("sources:\n  - name: q\n    type: file\n    paths: [x]\n");
        assert_eq!(at(&e), (Some(3), Some("sources[0].type")), "{e}");
        assert!(e.message.contains("source type file needs `format`"), "{e}");

        let e = err("sources:\n  - name: q\n    type: file\n    format: janssen_audit\n");
        assert_eq!(e.key.as_deref(), Some("sources[0].paths"), "{e}");

        let e = err("sources:\n  - name: q\n    type: syslog\n    format: janssen_audit\n");
        assert_eq!(at(&e), (Some(3), Some("sources[0].type")), "{e}");
        assert!(e.message.contains("unknown source type `syslog`"), "{e}");

        let e = err("sources:\n  - name: q\n    type: file\n    format: nope\n    paths: [x]\n");
        assert_eq!(at(&e), (Some(4), Some("sources[0].format")), "{e}");

        let e = err(
            "sources:\n  - name: q\n    type: activemq\n    format: janssen_audit\n    brokers: ['h:1', 'nohost']\n",
        );
        assert_eq!(at(&e), (Some(5), Some("sources[0].brokers[1]")), "{e}");

        let e = err(
            "sources:\n  - name: j\n    type: janssen_stat_entries\n    format: janssen_audit\n    url: postgres://u:p@h/d\n",
        );
        assert_eq!(at(&e), (Some(4), Some("sources[0].format")), "{e}");
        assert!(e.message.contains("takes no `format`"), "{e}");

        let e = err(
            "sources:\n  - name: j\n    type: janssen_stat_entries\n    url: http://u:s3cret@h/d\n",
        );
        assert_eq!(at(&e), (Some(4), Some("sources[0].url")), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");

        // An option of another kind is an unknown key of this one.
        let e = err(
            "sources:\n  - name: q\n    type: file\n    format: janssen_audit\n    paths: [x]\n    brokers: ['h:1']\n",
        );
        assert_eq!(at(&e), (Some(6), Some("sources[0].brokers")), "{e}");
    }

    #[test]
    fn each_kind_fills_its_defaults() {
        use super::activemq::ActivemqConfig;
        use super::file::{FileOptions, StartAt};
        use super::janssen::{JanssenStatEntriesConfig, StatMonths};
        let map = |t: &str| serde_yaml::from_str::<serde_yaml::Mapping>(t).unwrap();
        let f = FileOptions::decode(&map("paths: [x]")).unwrap();
        assert_eq!(
            (f.start_at, f.max_record_bytes, f.poll_interval_ms),
            (StartAt::Beginning, 1 << 20, 1000)
        );
        let a =
            ActivemqConfig::decode(&map("brokers: ['stomp://h:61613/', 'ssl://h:61614']")).unwrap();
        assert_eq!(a.brokers, ["h:61613", "stomp+ssl://h:61614"]);
        assert_eq!(
            (a.queue.as_str(), a.prefetch),
            ("oauth2.audit.logging", 5000)
        );
        let j = JanssenStatEntriesConfig::decode(&map("url: mysql://u@h/jans")).unwrap();
        assert_eq!(
            (j.table.as_str(), j.months, j.poll_interval_ms),
            ("jansStatEntry", StatMonths::Recent, 300_000)
        );
    }
}
