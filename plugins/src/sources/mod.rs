//! The source kinds (`type:` of a source), one module each, registered in [`kinds`].

pub mod activemq;
pub(crate) mod file;
pub mod janssen;

use crate::registry::SourceKind;

/// authstat's own source kinds.
pub(crate) fn kinds() -> Vec<SourceKind> {
    vec![
        SourceKind {
            name: "file",
            about: "files followed through rotation (docs/tailing.md)",
            build: file::build_file,
        },
        SourceKind {
            name: authstat_config::ACTIVEMQ,
            about: "Janssen's audit queue on ActiveMQ, over STOMP, acknowledged after each stored flush (docs/activemq.md)",
            build: activemq::build,
        },
        SourceKind {
            name: authstat_config::JANSSEN_STAT_ENTRIES,
            about: "Janssen's own statistics rows (jansStatEntry), stored as snapshots (docs/janssen.md)",
            build: janssen::build,
        },
    ]
}
