//! The source kinds (`type:` of a source), one module each, registered in [`kinds`].

pub(crate) mod file;

use crate::registry::SourceKind;

/// authstat's own source kinds.
pub(crate) fn kinds() -> Vec<SourceKind> {
    vec![SourceKind {
        name: "file",
        about: "files followed through rotation (docs/tailing.md)",
        build: file::build_file,
    }]
}
