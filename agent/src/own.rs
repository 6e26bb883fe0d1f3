//! One node id, one agent: this process's identity and its claim on the node id.
//!
//! At start the agent claims its node id in the backend ([`claim`]); a live claim by another
//! instance refuses the start ([`ClaimRefused`], exit code 78) unless `--take-over` is given.
//! Every flush carries the claim's epoch and renews the lease; a flush of an instance whose
//! claim was taken over is refused by the backend (fenced) and that instance stops reading.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authstat_core::NodeId;
use authstat_core::hash::murmur3_x64_128;
use authstat_core::store::{
    ClaimRequest, Instance, Lease, NodeClaim, StatStore, StoreError, TakeOver,
};
use tracing::{info, warn};

use authstat_core::month::now_ms;

use authstat_runtime::host_name;

/// This process, as the holder of a lease.
pub(crate) fn this_instance() -> Instance {
    let host = host_name().unwrap_or_else(|| "unknown".into());
    let pid = std::process::id();
    let started_at_ms = now_ms();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Unique enough to tell two processes apart (not a secret).
    let stack_marker = 0u8;
    let seed = format!("{host}/{pid}/{nanos}/{:p}", &stack_marker);
    let (a, b) = murmur3_x64_128(seed.as_bytes(), 0x5eed);
    Instance {
        id: format!("{a:016x}{b:016x}"),
        host,
        pid,
        started_at_ms,
        locality: locality(),
    }
}

/// The kernel's boot id and this process's pid namespace: where a pid identifies a process.
fn locality() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.trim().is_empty() || pid_ns.is_empty() {
        return String::new();
    }
    format!("{}/{pid_ns}", boot.trim())
}

/// Whether `holder` provably no longer runs: it ran in this boot and pid namespace, and its
/// pid is ours, or no process has it, or the process that has it started after the holder did
/// (the pid was reused). Anything else says "may run": the safe side.
fn provably_gone(holder: &Instance, me: &Instance) -> bool {
    if holder.locality.is_empty() || holder.locality != me.locality || holder.host != me.host {
        return false;
    }
    if holder.pid == me.pid {
        return true;
    }
    match process_started_ms(holder.pid) {
        None => !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists(),
        // The holder noted its start after its process began; /proc's boot time has whole
        // seconds: two seconds of slack.
        Some(started) => started > holder.started_at_ms + 2_000,
    }
}

/// When process `pid` started (milliseconds since the Unix epoch), from /proc: the boot time
/// in `/proc/stat` plus the process's start in clock ticks after boot.
fn process_started_ms(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    // Field 22 of the whole line (starttime) is the 20th after the command name.
    let ticks: i64 = fields.get(19)?.parse().ok()?;
    let boot_secs: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = i64::try_from(rustix::param::clock_ticks_per_second()).ok()?;
    Some(boot_secs * 1000 + ticks * 1000 / hz.max(1))
}

/// The node id is this process's: every flush is made under `epoch`.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The node.
    pub node: NodeId,
    /// This process.
    pub instance: Instance,
    /// The claim's epoch.
    pub epoch: u64,
    /// How long a claim lasts without a flush.
    pub lease: Duration,
}

impl Ownership {
    /// Until when a flush made now renews the lease.
    pub fn lease_until_ms(&self) -> i64 {
        now_ms().saturating_add(self.lease.as_millis() as i64)
    }
}

/// Another instance holds a live claim on the node id.
#[derive(Debug, thiserror::Error)]
#[error(
    "node id {node} is in use by another agent: {holder} holds it until {until} ms since the \
     epoch ({remaining} s from now); this is {me}. Give every agent its own node_id (the host \
     name by default). If that agent is gone (it crashed), start this one with --take-over, or \
     wait for its lease to expire"
)]
pub struct ClaimRefused {
    node: NodeId,
    holder: String,
    until: i64,
    remaining: i64,
    me: Instance,
    /// The holder's lease as read.
    lease: Lease,
}

/// Why claiming failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another agent runs with this node id.
    #[error(transparent)]
    Refused(#[from] ClaimRefused),
    /// The backend did not answer.
    #[error("claiming node id {node}: {source}")]
    Store {
        /// The node.
        node: NodeId,
        /// The backend's error.
        source: StoreError,
    },
}

/// Claims `node` for this process.
pub async fn claim(
    store: &dyn StatStore,
    node: &NodeId,
    lease: Duration,
    take_over: bool,
) -> Result<Ownership, ClaimError> {
    claim_as(store, node, lease, take_over, &this_instance()).await
}

/// Claims `node` as `instance`. Claiming again as the same instance is granted (the answer to
/// an earlier attempt may have been lost).
pub(crate) async fn claim_as(
    store: &dyn StatStore,
    node: &NodeId,
    lease: Duration,
    take_over: bool,
    instance: &Instance,
) -> Result<Ownership, ClaimError> {
    let instance = instance.clone();
    let now = now_ms();
    let mut request = ClaimRequest {
        node: node.clone(),
        instance: instance.clone(),
        until_ms: now.saturating_add(lease.as_millis() as i64),
        now_ms: now,
        take_over: if take_over {
            TakeOver::Always
        } else {
            TakeOver::Never
        },
    };
    let store_error = |source| ClaimError::Store {
        node: node.clone(),
        source,
    };
    let mut answer = store.claim_node(&request).await.map_err(store_error)?;
    // The holder crashed here (same host, same pid namespace, its process is gone): a restart
    // after a crash needs nobody to pass --take-over.
    if let NodeClaim::Refused { holder } = &answer
        && let Some(previous) = &holder.holder
        && provably_gone(previous, &instance)
    {
        warn!(%node, previous = %previous, "the node's previous agent is not running any more (it crashed): taking the node over");
        request.take_over = TakeOver::IfEpoch(holder.epoch);
        answer = store.claim_node(&request).await.map_err(store_error)?;
    }
    match answer {
        NodeClaim::Granted { epoch, previous } => {
            log_grant(
                node,
                &instance,
                epoch,
                previous.as_ref(),
                now,
                &request.take_over,
            );
            Ok(Ownership {
                node: node.clone(),
                instance,
                epoch,
                lease,
            })
        }
        NodeClaim::Refused { holder } => Err(ClaimRefused {
            node: node.clone(),
            holder: describe(&holder),
            until: holder.until_ms,
            remaining: holder.until_ms.saturating_sub(now).max(0) / 1000,
            me: instance,
            lease: holder,
        }
        .into()),
    }
}

/// Claims `node` as `instance` when the agent starts. While another instance holds a live
/// claim that cannot be proven dead, this waits to see whether that instance is alive: one
/// that renews its lease is (the claim is refused: two agents have this node id), one whose
/// lease runs out is not (it crashed, was killed, or its host or container restarted; its pid
/// may even have been reused) and the node is taken over then. So a crashed agent's successor
/// never exits (and is never left down by a supervisor that does not restart on exit code 78),
/// and two live agents are told apart within one renewal. `waiting` hears what it waits for.
pub(crate) async fn claim_or_wait(
    store: &dyn StatStore,
    node: &NodeId,
    lease: Duration,
    take_over: bool,
    instance: &Instance,
    waiting: &(dyn Fn(String) + Send + Sync),
) -> Result<Ownership, ClaimError> {
    let mut first: Option<Lease> = None;
    loop {
        let refused = match claim_as(store, node, lease, take_over, instance).await {
            Err(ClaimError::Refused(refused)) => refused,
            other => return other,
        };
        let held = &refused.lease;
        match &first {
            None => {
                warn!(%node, holder = %refused.holder, remaining_secs = refused.remaining, "the node id is held by another agent: waiting until its lease is renewed (it runs: this agent exits) or runs out (it is gone: this agent takes over)");
                first = Some(held.clone());
            }
            // It renewed its lease, or another instance took the node: someone runs with it.
            Some(seen) if held.epoch != seen.epoch || held.until_ms > seen.until_ms => {
                return Err(refused.into());
            }
            Some(_) => {}
        }
        waiting(format!(
            "the node id {node} is held by {} for {} s more; waiting for its lease to run out or be renewed",
            refused.holder, refused.remaining
        ));
        let left = u64::try_from(held.until_ms.saturating_sub(now_ms())).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(left.clamp(50, 1000))).await;
    }
}

fn describe(lease: &Lease) -> String {
    match &lease.holder {
        Some(h) => h.to_string(),
        None => "an unknown instance".into(),
    }
}

fn log_grant(
    node: &NodeId,
    me: &Instance,
    epoch: u64,
    previous: Option<&Lease>,
    now: i64,
    how: &TakeOver,
) {
    let mine = |p: &Lease| p.holder.as_ref().is_some_and(|h| h.id == me.id);
    match previous {
        // A retried claim whose first answer was lost.
        Some(p) if mine(p) => info!(%node, epoch, instance = %me.id, "node id claimed"),
        // Its process is gone from this host (said when it was found out): no --take-over.
        Some(p) if matches!(how, TakeOver::IfEpoch(_)) => warn!(
            %node, epoch, instance = %me.id, previous = %describe(p),
            "took the node id over from a crashed predecessor on this host (its process is gone)"
        ),
        Some(p) if p.is_live(now) => warn!(
            %node, epoch, instance = %me.id, previous = %describe(p),
            "took the node id over from a live claim (--take-over): that agent's flushes are refused from now on"
        ),
        Some(p) if !p.released => warn!(
            %node, epoch, instance = %me.id, previous = %describe(p),
            "took the node id over from an expired claim (that agent stopped without releasing it)"
        ),
        _ => info!(%node, epoch, instance = %me.id, "node id claimed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A holder whose pid now belongs to a process that started after it did is gone (the pid
    /// was reused); the process that started before its note is the holder itself; a pid that
    /// nobody has is gone; another pid namespace proves nothing.
    #[test]
    fn a_reused_pid_does_not_keep_a_crashed_holder_alive() {
        let me = this_instance();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let holder = |pid: u32, started_at_ms: i64, locality: &str| Instance {
            id: "holder".into(),
            host: me.host.clone(),
            pid,
            started_at_ms,
            locality: locality.into(),
        };
        let now = now_ms();
        assert!(provably_gone(
            &holder(child.id(), now - 60_000, &me.locality),
            &me
        ));
        assert!(!provably_gone(
            &holder(child.id(), now + 1_000, &me.locality),
            &me
        ));
        assert!(!provably_gone(
            &holder(child.id(), now - 60_000, "another-boot/pid:[1]"),
            &me
        ));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(provably_gone(
            &holder(child.id(), now + 1_000, &me.locality),
            &me
        ));
    }
}
