//! What each source reads, in the log: all of it once at start, then each input that appears
//! (a new or rotated file) at INFO and each that goes away at DEBUG.

use std::collections::{BTreeSet, HashMap};

use tracing::{debug, info};

/// At start, at most this many inputs are named per source (the count is always given).
const NAMED_AT_START: usize = 20;

/// The inputs each source had at the last scan.
#[derive(Debug, Default)]
pub struct Followed {
    by_source: HashMap<String, BTreeSet<String>>,
}

impl Followed {
    /// Records `inputs` of `source`, logging what changed.
    pub(crate) fn observe(&mut self, source: &str, inputs: Vec<String>) {
        let now: BTreeSet<String> = inputs.into_iter().collect();
        let Some(before) = self.by_source.get_mut(source) else {
            let mut named: Vec<&str> = now
                .iter()
                .take(NAMED_AT_START)
                .map(String::as_str)
                .collect();
            if now.len() > NAMED_AT_START {
                named.push("…");
            }
            info!(
                source,
                count = now.len(),
                inputs = %named.join(", "),
                "following"
            );
            self.by_source.insert(source.to_owned(), now);
            return;
        };
        if *before == now {
            return;
        }
        for input in now.difference(before) {
            info!(source, input = %input, "following a new input");
        }
        for input in before.difference(&now) {
            debug!(source, input = %input, "no longer following");
        }
        *before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_kept() {
        let mut f = Followed::default();
        f.observe("a", vec!["x".into(), "y".into()]);
        f.observe("a", vec!["y".into(), "z".into()]);
        assert_eq!(
            f.by_source["a"],
            BTreeSet::from(["y".to_owned(), "z".to_owned()])
        );
    }
}
