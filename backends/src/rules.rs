//! The rules every backend applies alike: which days and snapshots it takes, who may claim a
//! node, how a fenced flush names the node's owner.

use authstat_core::Month;
use authstat_core::store::{ClaimRequest, Lease, Snapshot, StoreError, TakeOver};

/// Refuses a day that no month has (shared by every backend).
pub(crate) fn check_day(backend: &'static str, day: u32) -> Result<(), StoreError> {
    if (1..=31).contains(&day) {
        Ok(())
    } else {
        Err(StoreError::Rejected {
            backend,
            message: format!("day {day} is not 1 to 31"),
        })
    }
}

/// Refuses a snapshot for a node that is not foreign, or one whose months carry foreign users
/// of their own (shared by every backend).
pub(crate) fn check_snapshot(backend: &'static str, snapshot: &Snapshot) -> Result<(), StoreError> {
    let reject = |message: String| Err(StoreError::Rejected { backend, message });
    if !snapshot.node.is_foreign() {
        return reject(format!(
            "snapshots are for foreign nodes (authstat:<system>:<id>), not for {}",
            snapshot.node
        ));
    }
    let mut months: Vec<Month> = snapshot.months.iter().map(|m| m.month).collect();
    months.sort_unstable();
    months.dedup();
    if months.len() != snapshot.months.len() {
        return reject(format!("snapshot of {} repeats a month", snapshot.node));
    }
    if snapshot.months.iter().any(|m| m.foreign_users.is_some()) {
        return reject("a snapshot's users go in `users`".into());
    }
    Ok(())
}

/// Whether `request` may take the node from `lease` (shared by every backend).
pub(crate) fn may_claim(lease: Option<&Lease>, request: &ClaimRequest) -> bool {
    match lease {
        None => true,
        Some(lease) => {
            let take_over = match request.take_over {
                TakeOver::Never => false,
                TakeOver::Always => true,
                TakeOver::IfEpoch(epoch) => epoch == lease.epoch,
            };
            take_over
                || !lease.is_live(request.now_ms)
                || lease
                    .holder
                    .as_ref()
                    .is_some_and(|h| h.id == request.instance.id)
        }
    }
}

/// How a fenced flush names the node's owner.
pub(crate) fn holder_text(lease: Option<&Lease>) -> String {
    match lease {
        None => "nobody (the node's lease is gone)".to_owned(),
        Some(Lease {
            holder: Some(h),
            epoch,
            ..
        }) => format!("{h} under epoch {epoch}"),
        Some(Lease { epoch, .. }) => format!("an unknown instance under epoch {epoch}"),
    }
}
